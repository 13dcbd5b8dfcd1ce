package devidp

import (
	"encoding/base64"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/crewjam/saml"
)

// pendingLoginTTL is how long a sign-in page can be answered.
const pendingLoginTTL = 15 * time.Minute

// maxPendingLogins bounds the memory held by unanswered sign-in pages.
// When it is reached, the oldest is dropped.
const maxPendingLogins = 1000

// pendingLogin is a validated AuthnRequest waiting for its sign-in form.
type pendingLogin struct {
	req     *saml.IdpAuthnRequest
	expires time.Time
}

// pendingLogins holds the AuthnRequests whose sign-in page has been shown,
// keyed by the random token in that page's form. The request is validated
// (signature, destination, issue instant, SP, ACS) once, when it arrives;
// the form only has to authenticate the user.
type pendingLogins struct {
	now  func() time.Time
	rand io.Reader

	mu sync.Mutex
	m  map[string]pendingLogin
}

func newPendingLogins(now func() time.Time, random io.Reader) *pendingLogins {
	return &pendingLogins{now: now, rand: random, m: make(map[string]pendingLogin)}
}

// add stores req and returns the token that takes it back.
func (p *pendingLogins) add(req *saml.IdpAuthnRequest) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(p.rand, b); err != nil {
		return "", fmt.Errorf("generate sign-in token: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	// The HTTP request is over once the page is written; the form's
	// request replaces it.
	req.HTTPRequest = nil
	p.put(id, pendingLogin{req: req, expires: p.now().Add(pendingLoginTTL)})
	return id, nil
}

// put stores pl under id, first dropping expired entries and, if there are
// still too many, the one that expires first.
func (p *pendingLogins) put(id string, pl pendingLogin) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var oldestID string
	var oldest time.Time
	for k, v := range p.m {
		switch {
		case !now.Before(v.expires):
			delete(p.m, k)
		case oldestID == "" || v.expires.Before(oldest):
			oldestID, oldest = k, v.expires
		}
	}
	if len(p.m) >= maxPendingLogins {
		delete(p.m, oldestID)
	}
	p.m[id] = pl
}

// take removes and returns the unexpired request stored under id. Taking
// it makes sure that two posts of one form cannot both sign in; a failed
// sign-in puts it back.
func (p *pendingLogins) take(id string) (pendingLogin, bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.m[id]
	if !ok {
		return pendingLogin{}, false
	}
	delete(p.m, id)
	if !now.Before(pl.expires) {
		return pendingLogin{}, false
	}
	return pl, true
}
