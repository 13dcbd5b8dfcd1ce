package multi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// recoveryTimeout bounds how long the instances may take to serve again
// once Redis is back.
const recoveryTimeout = 5 * time.Second

// TestRedisOutage: while Redis is down, a session A verified within
// cache_ttl keeps working on A and nothing else passes; every other
// request gets the 503 "Sign-in temporarily unavailable" page (whose
// correlation id is in A's log), /sso/healthz says down, and no sign-in
// can start. When Redis is back on the same port, the instances recover
// without a restart: healthz is 200 again, sessions lost with Redis's data
// send the user to sign in, a new sign-in works end to end, and logouts
// are announced again.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cookie := c.signIn(t, c.a)

	// The outage must begin while A's cache entry is fresh. Stopping Redis
	// takes milliseconds; should this machine be so slow that the request
	// in the outage leaves after the entry may have expired, try again
	// with a new session rather than assert on a race.
	var loaded, cached reply
	for attempt := 1; ; attempt++ {
		_, loaded = c.a.me(t, cookie)
		if loaded.status != http.StatusOK {
			t.Fatalf("A: GET /api/me before the outage = %s; want 200", loaded)
		}
		c.redis.Stop()
		_, cached = c.a.me(t, cookie)
		if cached.sent.Sub(loaded.done) < cacheTTL/2 {
			break
		}
		if attempt == 3 {
			t.Fatalf("could not stop Redis within %v of A caching the session, 3 times", cacheTTL/2)
		}
		t.Logf("attempt %d: the request in the outage left %v after the session was cached; again", attempt, cached.sent.Sub(loaded.done))
		c.redis.Start()
		waitHealth(t, c.a, http.StatusOK, recoveryTimeout)
		cookie = c.signIn(t, c.a)
	}
	outage := time.Now()
	if cached.status != http.StatusOK {
		t.Errorf("A: session cached %v before the outage = %s; want 200 (cache_ttl %v)", cached.sent.Sub(loaded.done), cached, cacheTTL)
	}

	// After cache_ttl, A must ask Redis and, not reaching it, refuse. No
	// request of the session passes once its cache entry may have expired.
	var refused reply
	for {
		r := get(t, c.a.url+"/reports", cookie, acceptHTML)
		if r.status == http.StatusOK && r.sent.After(loaded.done.Add(cacheTTL)) {
			t.Fatalf("A served the session %v after caching it, with Redis down (cache_ttl %v)", r.sent.Sub(loaded.done), cacheTTL)
		}
		if r.status != http.StatusOK {
			refused = r
			break
		}
		if time.Since(loaded.done) > cacheTTL+3*time.Second {
			t.Fatalf("A still serves the session %v after caching it, with Redis down", time.Since(loaded.done))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("A refused the cached session %v after caching it", refused.sent.Sub(loaded.done))
	// The entry was cached no earlier than loaded.sent, and A read its
	// clock for the refusal no later than refused.done.
	if early := refused.done.Sub(loaded.sent); early < cacheTTL {
		t.Errorf("A refused the session %v after caching it; want it served from the cache for cache_ttl (%v)", early, cacheTTL)
	}
	checkUnavailablePage(t, c.a, refused)
	checkAnswerTime(t, "A: the session after cache_ttl", refused)

	// Meanwhile: an API client gets the same refusal as JSON; nothing
	// passes without a session, on either instance; a session that B
	// never cached is refused by B; healthz says down; no sign-in starts.
	forged := &http.Cookie{Name: cookieName, Value: strings.Repeat("A", 43)}
	checks := []outageCheck{
		{name: "A: API client with the session", req: newGet(t, c.a.url+"/api/me", cookie, acceptJSON), status: http.StatusServiceUnavailable, reason: "store_unavailable"},
		{name: "B: browser with A's session", req: newGet(t, c.b.url+"/reports", cookie, acceptHTML), status: http.StatusServiceUnavailable, reason: "store_unavailable"},
	}
	for _, in := range []*instance{c.a, c.b} {
		checks = append(checks,
			outageCheck{name: in.name + ": browser without a cookie", req: newGet(t, in.url+"/reports", nil, acceptHTML), status: http.StatusFound},
			outageCheck{name: in.name + ": API client without a cookie", req: newGet(t, in.url+"/api/me", nil, acceptJSON), status: http.StatusUnauthorized},
			outageCheck{name: in.name + ": unknown session", req: newGet(t, in.url+"/reports", forged, acceptHTML), status: http.StatusServiceUnavailable, reason: "store_unavailable"},
			outageCheck{name: in.name + ": starting a sign-in", req: newGet(t, in.url+"/sso/login/northwind?rd=/x", nil, acceptHTML), status: http.StatusServiceUnavailable, reason: "store_unavailable"},
			outageCheck{name: in.name + ": healthz", req: newGet(t, in.url+"/sso/healthz", nil, acceptJSON), status: http.StatusServiceUnavailable, health: true},
		)
	}
	reqs := make([]*http.Request, len(checks))
	for i, ck := range checks {
		reqs[i] = ck.req
	}
	for i, r := range all(t, reqs...) {
		ck := checks[i]
		if r.status != ck.status || (ck.reason != "" && r.reason() != ck.reason) {
			t.Errorf("%s, in the outage: %s; want %d %s", ck.name, r, ck.status, ck.reason)
		}
		if ck.reason != "" && r.correlationID() == "" {
			t.Errorf("%s, in the outage: the refusal has no correlation id: %s", ck.name, r)
		}
		if ck.health {
			var health struct{ Status, Store string }
			if err := json.Unmarshal([]byte(r.body), &health); err != nil || health.Store != "down" {
				t.Errorf("%s, in the outage: %s; want store down", ck.name, r)
			}
		}
		checkAnswerTime(t, ck.name, r)
	}

	// Redis comes back, empty (it keeps nothing on disk).
	c.redis.Start()
	restarted := time.Now()
	t.Logf("Redis was down for %v", restarted.Sub(outage).Round(time.Millisecond))
	for _, in := range []*instance{c.a, c.b} {
		d := waitHealth(t, in, http.StatusOK, recoveryTimeout)
		t.Logf("%s: healthz 200 again %v after Redis restarted", in.name, d)
	}
	if r := get(t, c.a.url+"/reports", cookie, acceptHTML); r.status != http.StatusFound || !strings.HasPrefix(r.location(), "/sso/login?rd=") {
		t.Errorf("A: the session lost with Redis's data = %s; want 302 to /sso/login", r)
	}

	// A new sign-in works end to end: started on A, completed on B, valid
	// on both.
	relay, req := c.a.startLogin(t, "/after-outage")
	r := c.b.postACS(t, c.response(t, req.ID), relay)
	if r.status != http.StatusSeeOther || r.session() == nil || r.location() != "/after-outage" {
		t.Fatalf("B: ACS after the outage = %s; want 303 to /after-outage with a session", r)
	}
	fresh := r.session()
	for _, in := range []*instance{c.a, c.b} {
		if id, r := in.me(t, fresh); r.status != http.StatusOK || id.Email != nancy.Email {
			t.Errorf("%s: GET /api/me with the new session = %s; want 200 for %s", in.name, r, nancy.Email)
		}
	}

	// Both instances listen for revocations again: a logout on B drops
	// A's cached copy before its cache entry expires.
	if n, ok := c.subscribersWithin(t, 2, recoveryTimeout); !ok {
		t.Fatalf("%d instances subscribed to revocations %v after Redis came back; want 2", n, recoveryTimeout)
	}
	_, loaded = c.a.me(t, fresh)
	if loaded.status != http.StatusOK {
		t.Fatalf("A: GET /api/me with the new session = %s; want 200", loaded)
	}
	out := c.logout(t, c.b, fresh)
	refusedAfterLogout(t, c.a, fresh, loaded, out)
}

// outageCheck is a request made while Redis is down and the answer it must
// get.
type outageCheck struct {
	name   string
	req    *http.Request
	status int
	reason string // of a refusal, if any
	health bool   // healthz: the body must say the store is down
}

// TestLoginInFlightDuringOutage: a sign-in whose response arrives while
// Redis is down is refused with a 503, never a session or a 500, whichever
// instance receives it, and an IdP-initiated one too (the replay cache is
// unreachable). Redis keeps no data, so after its restart the interrupted
// sign-in cannot be finished (its RelayState is unknown: refused, still no
// session), and a fresh one succeeds.
func TestLoginInFlightDuringOutage(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	relay, req := c.a.startLogin(t, "/in-flight")
	resp := c.response(t, req.ID)

	c.redis.Stop()
	posts := []struct {
		name string
		req  *http.Request
	}{
		{"SP-initiated, to B", c.b.newACSPost(t, resp, relay)},
		{"SP-initiated, to A", c.a.newACSPost(t, resp, relay)},
		{"IdP-initiated, to A", c.a.newACSPost(t, c.response(t, ""), "")},
	}
	reqs := make([]*http.Request, len(posts))
	for i, p := range posts {
		reqs[i] = p.req
	}
	for i, r := range all(t, reqs...) {
		name := posts[i].name
		if r.status != http.StatusServiceUnavailable || r.reason() != "store_unavailable" || r.session() != nil {
			t.Errorf("%s in the outage: %d, reason %q, session %v; want 503 store_unavailable and no session\n%s",
				name, r.status, r.reason(), r.session() != nil, r)
		}
		if r.title() != "Sign-in temporarily unavailable" {
			t.Errorf("%s in the outage: page title %q; want %q", name, r.title(), "Sign-in temporarily unavailable")
		}
		checkAnswerTime(t, name, r)
	}

	c.redis.Start()
	for _, in := range []*instance{c.a, c.b} {
		waitHealth(t, in, http.StatusOK, recoveryTimeout)
	}
	r := c.b.postACS(t, resp, relay)
	if r.status != http.StatusForbidden || r.reason() != "unknown_request" || r.session() != nil {
		t.Errorf("B: the interrupted sign-in after Redis restarted empty = %d, reason %q, session %v; want 403 unknown_request and no session",
			r.status, r.reason(), r.session() != nil)
	}

	relay, req = c.a.startLogin(t, "/in-flight")
	r = c.b.postACS(t, c.response(t, req.ID), relay)
	if r.status != http.StatusSeeOther || r.session() == nil || r.location() != "/in-flight" {
		t.Fatalf("B: a fresh sign-in after the outage = %s; want 303 to /in-flight with a session", r)
	}
	if id, r := c.a.me(t, r.session()); r.status != http.StatusOK || id.Email != nancy.Email {
		t.Errorf("A: GET /api/me with the fresh session = %s; want 200 for %s", r, nancy.Email)
	}
}

// outageAnswerBound bounds how long an instance may take to refuse a
// request it cannot serve without Redis. The operator guide says a request
// waits about read_timeout (500ms here), but go-redis's dial retries
// (DialerRetries, 5) and command retries (MaxRetries, 3), which the store
// leaves at their defaults, make it about 1.7s when Redis refuses
// connections. The bound catches a request left hanging.
const outageAnswerBound = 4 * time.Second

// checkAnswerTime fails t if r took longer than outageAnswerBound.
func checkAnswerTime(t *testing.T, name string, r reply) {
	t.Helper()
	if d := r.done.Sub(r.sent); d > outageAnswerBound {
		t.Errorf("%s, in the outage: answered after %v; want within %v", name, d, outageAnswerBound)
	}
}

// checkUnavailablePage checks a refusal for an unreachable store: a 503
// "Sign-in temporarily unavailable" page whose correlation id is in the
// instance's log with the reason.
func checkUnavailablePage(t *testing.T, in *instance, r reply) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("%s: %s; want 503", in.name, r)
	}
	if got, want := r.title(), "Sign-in temporarily unavailable"; got != want {
		t.Errorf("%s: page title %q; want %q", in.name, got, want)
	}
	if got := r.reason(); got != "store_unavailable" {
		t.Errorf("%s: reason %q; want store_unavailable", in.name, got)
	}
	id := r.correlationID()
	if id == "" {
		t.Fatalf("%s: the 503 page has no correlation id:\n%s", in.name, r)
	}
	if _, ok := in.waitLogLine(t, id, "request denied", "store_unavailable"); !ok {
		t.Errorf("%s: no 'request denied' log line with correlation id %s and reason store_unavailable", in.name, id)
	}
}

// waitHealth polls the instance's /sso/healthz until it answers status,
// fails t if that takes longer than within, and returns how long it took.
func waitHealth(t *testing.T, in *instance, status int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r := get(t, in.url+"/sso/healthz", nil, acceptJSON)
		if r.status == status {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: /sso/healthz = %s after %v; want %d", in.name, r, within, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
