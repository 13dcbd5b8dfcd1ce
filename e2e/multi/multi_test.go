package multi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/internal/redistest"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// TestSessionFromAAcceptedByB: a session made by A's ACS lets the same
// cookie through B, with the same identity, and B's upstream verifies the
// token B mints.
func TestSessionFromAAcceptedByB(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cookie := c.signIn(t, c.a)

	fromA, r := c.a.me(t, cookie)
	if r.status != http.StatusOK {
		t.Fatalf("A: GET /api/me with A's session = %s; want 200", r)
	}
	fromB, r := c.b.me(t, cookie)
	if r.status != http.StatusOK {
		t.Fatalf("B: GET /api/me with A's session = %s; want 200", r)
	}
	want := who{Email: nancy.Email, Role: "supervisor", Company: "northwind", Provider: "northwind", ObjectID: nancy.ObjectID}
	if got := whoOf(fromA); got != want {
		t.Errorf("A: identity = %+v; want %+v", got, want)
	}
	if got := whoOf(fromB); got != want {
		t.Errorf("B: identity = %+v; want %+v", got, want)
	}
	if fromA.SessionID == "" || fromA.SessionID != fromB.SessionID {
		t.Errorf("session id on A %q, on B %q; want the same, not empty", fromA.SessionID, fromB.SessionID)
	}

	// Control: B lets nothing through without that cookie.
	if _, r := c.b.me(t, nil); r.status != http.StatusUnauthorized {
		t.Errorf("B: GET /api/me without a cookie = %s; want 401", r)
	}
}

// who is the part of an identity the tests compare.
type who struct{ Email, Role, Company, Provider, ObjectID string }

func whoOf(id engageauth.Identity) who {
	return who{Email: id.Email, Role: id.Role, Company: id.Company, Provider: id.Provider, ObjectID: id.ObjectID}
}

// TestLogoutOnBRefusedOnA: a logout on B ends the session on A too, even
// though A holds it in its local cache, within cache_ttl (1s) and, thanks to
// the revocation announcement, before the cache entry would have expired.
func TestLogoutOnBRefusedOnA(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cookie := c.signIn(t, c.a)
	if _, r := c.b.me(t, cookie); r.status != http.StatusOK {
		t.Fatalf("B: GET /api/me before logout = %s; want 200", r)
	}
	// A loads the session now, so its cache entry is as fresh as possible.
	_, loaded := c.a.me(t, cookie)
	if loaded.status != http.StatusOK {
		t.Fatalf("A: GET /api/me before logout = %s; want 200", loaded)
	}

	out := c.logout(t, c.b, cookie)

	refused := refusedAfterLogout(t, c.a, cookie, loaded, out)
	if refused.status != http.StatusFound || !strings.HasPrefix(refused.location(), "/sso/login?rd=") {
		t.Errorf("A after logout on B: %s; want 302 to /sso/login", refused)
	}
	if _, r := c.a.me(t, cookie); r.status != http.StatusUnauthorized {
		t.Errorf("A: GET /api/me after logout on B = %s; want 401", r)
	}
}

// refusedAfterLogout polls the instance with the cookie, whose session it
// cached with the answer loaded and another instance ended with the answer
// out, until it refuses the session; it returns the refusal. It fails t
// unless the refusal came within cache_ttl of the logout and before the
// cache entry could have expired, that is, by the revocation announcement.
func refusedAfterLogout(t *testing.T, in *instance, cookie *http.Cookie, loaded, out reply) reply {
	t.Helper()
	var refused reply
	for {
		r := get(t, in.url+"/reports", cookie, acceptHTML)
		if r.status != http.StatusOK {
			refused = r
			break
		}
		if time.Since(out.done) > 2*cacheTTL {
			t.Fatalf("%s still serves the session %v after the logout", in.name, time.Since(out.done))
		}
		time.Sleep(10 * time.Millisecond)
	}
	lag := refused.done.Sub(out.done)
	t.Logf("%s refused the session %v after the logout returned", in.name, lag)
	if lag > cacheTTL {
		t.Errorf("%s refused the session %v after the logout; want within %v", in.name, lag, cacheTTL)
	}
	// The entry was cached no earlier than loaded.sent; the refusal was
	// decided no later than refused.done. Before loaded.sent+cacheTTL the
	// entry was still valid, so only the announcement could end it.
	if age := refused.done.Sub(loaded.sent); age >= cacheTTL {
		t.Errorf("%s refused the session only %v after caching it, when its cache entry (ttl %v) may have expired: the revocation announcement did not reach it",
			in.name, age, cacheTTL)
	}
	return refused
}

// logout ends the cookie's session at the instance: GET /sso/logout. The
// session ends there and then; the answer is the signed-out page, or, as
// the northwind IdP has a single logout service, a redirect to it with a
// LogoutRequest. Either way the session cookie is cleared.
func (c *cluster) logout(t *testing.T, in *instance, cookie *http.Cookie) reply {
	t.Helper()
	r := get(t, in.url+"/sso/logout", cookie, acceptHTML)
	signedOut := r.status == http.StatusOK && strings.Contains(r.body, "You have signed out")
	toIdP := r.status == http.StatusFound && strings.HasPrefix(r.location(), c.northwind.SSOURL+"?SAMLRequest=")
	if !signedOut && !toIdP {
		t.Fatalf("%s: GET /sso/logout = %s; want 200 and the signed-out page, or 302 to the IdP's single logout service", in.name, r)
	}
	cleared := false
	for _, ck := range r.cookies {
		cleared = cleared || ck.Name == cookieName && ck.MaxAge < 0
	}
	if !cleared {
		t.Errorf("%s: logout does not clear the session cookie: %v", in.name, r.cookies)
	}
	return r
}

// TestLoginStartedOnACompletedOnB: the pending login A saves is in Redis,
// B's ACS takes it (return path included) and makes a session valid on A;
// the RelayState cannot be used again, on either instance.
func TestLoginStartedOnACompletedOnB(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	relay, req := c.a.startLogin(t, "/reports/weekly?team=7")
	if req.ACSURL != c.northwindACS() {
		t.Errorf("AuthnRequest from A asks for the response at %q; want %q", req.ACSURL, c.northwindACS())
	}
	pendingKey := c.prefix + "p:" + relay
	if n := redisInt(t, c, "EXISTS", pendingKey); n != 1 {
		t.Fatalf("EXISTS %s = %d after A started the login; want 1 (the pending login in Redis)", pendingKey, n)
	}

	r := c.b.postACS(t, c.response(t, req.ID), relay)
	if r.status != http.StatusSeeOther || r.session() == nil {
		t.Fatalf("B: ACS with A's RelayState = %s; want 303 and a session", r)
	}
	if r.location() != "/reports/weekly?team=7" {
		t.Errorf("B: ACS redirects to %q; want the return path saved by A, /reports/weekly?team=7", r.location())
	}
	if n := redisInt(t, c, "EXISTS", pendingKey); n != 0 {
		t.Errorf("EXISTS %s = %d after B completed the login; want 0", pendingKey, n)
	}
	cookie := r.session()
	for _, in := range []*instance{c.a, c.b} {
		if id, r := in.me(t, cookie); r.status != http.StatusOK || id.Email != nancy.Email {
			t.Errorf("%s: GET /api/me with the session from B = %s (email %q); want 200 for %s", in.name, r, id.Email, nancy.Email)
		}
	}

	// The RelayState was used: a new response to the same request, with
	// it, is refused on A (and on B).
	for _, in := range []*instance{c.a, c.b} {
		again := in.postACS(t, c.response(t, req.ID), relay)
		if again.status != http.StatusForbidden || again.session() != nil || again.reason() != "unknown_request" {
			t.Errorf("%s: ACS with the used RelayState = %d, reason %q, session %v; want 403 unknown_request and no session",
				in.name, again.status, again.reason(), again.session() != nil)
		}
	}
}

// TestReplayAcrossInstances: an assertion accepted by one instance is
// refused by every instance.
func TestReplayAcrossInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	tests := []struct {
		name          string
		first, second *instance
	}{
		{"A then B", c.a, c.b},
		{"B then A", c.b, c.a},
		{"A then A", c.a, c.a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := c.response(t, "")
			if r := tt.first.postACS(t, resp, ""); r.status != http.StatusSeeOther || r.session() == nil {
				t.Fatalf("%s: first post = %s; want 303 and a session", tt.first.name, r)
			}
			r := tt.second.postACS(t, resp, "")
			if r.status != http.StatusForbidden || r.reason() != "replayed" || r.session() != nil {
				t.Errorf("%s: replayed post = %d, reason %q, session %v; want 403 replayed and no session",
					tt.second.name, r.status, r.reason(), r.session() != nil)
			}
			id := r.correlationID()
			if id == "" {
				t.Fatalf("refusal page has no correlation id:\n%s", r)
			}
			if _, ok := tt.second.waitLogLine(t, id, "sign-in refused", "replayed"); !ok {
				t.Errorf("%s: no 'sign-in refused' log line with correlation id %s and reason replayed", tt.second.name, id)
			}
		})
	}
}

// redisInt runs a command on the cluster's Redis and returns its integer
// reply.
func redisInt(t *testing.T, c *cluster, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	reply, err := redistest.Do(ctx, c.redis.Addr(), args...)
	if err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	n, ok := replyInt(reply)
	if !ok {
		t.Fatalf("redis %v = %#v; want an integer", args, reply)
	}
	return n
}

// replyInt returns the integer of a redistest.Do reply (integers come as
// strings).
func replyInt(reply any) (int, bool) {
	s, ok := reply.(string)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
