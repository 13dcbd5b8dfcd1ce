package caddymodule

import (
	"sync"
	"time"
)

// tokenCache keeps the identity token minted for each session so that the
// fast path reuses it instead of signing on every request. It is bounded:
// when full, expired entries are dropped first, then the whole cache (a
// miss only costs one signature).
type tokenCache struct {
	max int
	mu  sync.RWMutex
	m   map[string]cachedToken
}

type cachedToken struct {
	jwt     string
	expires time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[string]cachedToken)}
}

// get returns the session's token if it is valid for at least margin more.
func (c *tokenCache) get(sid string, now time.Time, margin time.Duration) (string, bool) {
	c.mu.RLock()
	t, ok := c.m[sid]
	c.mu.RUnlock()
	if !ok || now.Add(margin).After(t.expires) {
		return "", false
	}
	return t.jwt, true
}

func (c *tokenCache) put(sid, jwt string, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sid]; !ok && len(c.m) >= c.max {
		for k, t := range c.m {
			if !now.Before(t.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[sid] = cachedToken{jwt: jwt, expires: expires}
}

// clear empties the cache (after a key change, so that no token signed
// with the previous key is handed out any more).
func (c *tokenCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

func (c *tokenCache) drop(sid string) {
	c.mu.Lock()
	delete(c.m, sid)
	c.mu.Unlock()
}
