package caddymodule

import (
	"sync"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// sessionCache keeps recently loaded sessions in process memory so that
// the authenticated fast path does not ask the store on every request. An
// entry lives at most ttl; a session deleted on any instance is dropped at
// once through the store's revocation feed (best effort, so the short ttl
// is the bound). It is bounded like tokenCache.
type sessionCache struct {
	ttl time.Duration
	max int
	mu  sync.RWMutex
	m   map[string]cachedSession
}

type cachedSession struct {
	s  session.Session
	at time.Time
}

func newSessionCache(ttl time.Duration, max int) *sessionCache {
	return &sessionCache{ttl: ttl, max: max, m: make(map[string]cachedSession)}
}

// get returns a copy of the cached session if it is younger than the ttl.
func (c *sessionCache) get(id string, now time.Time) (*session.Session, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || now.Sub(e.at) >= c.ttl {
		return nil, false
	}
	s := e.s
	return &s, true
}

// put caches s as loaded (or renewed) at now.
func (c *sessionCache) put(s *session.Session, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[s.ID]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if now.Sub(e.at) >= c.ttl {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[s.ID] = cachedSession{s: *s, at: now}
}

// refresh updates a cached session's record without extending its age.
func (c *sessionCache) refresh(s *session.Session) {
	c.mu.Lock()
	if e, ok := c.m[s.ID]; ok {
		e.s = *s
		c.m[s.ID] = e
	}
	c.mu.Unlock()
}

func (c *sessionCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
