package devidp

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/crewjam/saml"
)

func TestPendingLogins(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p := newPendingLogins(clock.Now, rand.Reader)
	req := &saml.IdpAuthnRequest{}
	id, err := p.add(req)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	other, err := p.add(&saml.IdpAuthnRequest{})
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if id == other || len(id) < 40 {
		t.Errorf("add() ids %q and %q; want distinct random tokens", id, other)
	}

	pl, ok := p.take(id)
	if !ok || pl.req != req {
		t.Fatalf("take(%q) = %v, %t; want the request", id, pl.req, ok)
	}
	if _, ok := p.take(id); ok {
		t.Errorf("take(%q) twice succeeded; want once", id)
	}
	p.put(id, pl)
	if _, ok := p.take(id); !ok {
		t.Errorf("take(%q) after put failed", id)
	}

	clock.Advance(pendingLoginTTL)
	if _, ok := p.take(other); ok {
		t.Errorf("take(%q) after %v succeeded; want expired", other, pendingLoginTTL)
	}
}

func TestPendingLoginsBounded(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p := newPendingLogins(clock.Now, rand.Reader)
	first, err := p.add(&saml.IdpAuthnRequest{})
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	for range maxPendingLogins {
		clock.Advance(time.Millisecond)
		if _, err := p.add(&saml.IdpAuthnRequest{}); err != nil {
			t.Fatalf("add: %v", err)
		}
	}
	if got := len(p.m); got != maxPendingLogins {
		t.Errorf("%d pending logins; want at most %d", got, maxPendingLogins)
	}
	if _, ok := p.take(first); ok {
		t.Errorf("the oldest pending login was kept; want it dropped")
	}
}
