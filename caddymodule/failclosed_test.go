package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/engage-sso/engage-sso/caddymodule/session"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// checkDenied checks a fail-closed answer: the status, no request upstream,
// no session cookie, the correlation id in the body (HTML or JSON), no
// error detail in it, and a log entry with the id and the detail.
func checkDenied(t *testing.T, e *testEnv, res result, wantStatus int, wantJSON bool) {
	t.Helper()
	if res.rec.Code != wantStatus {
		t.Errorf("status = %d; want %d\n%s", res.rec.Code, wantStatus, res.body())
	}
	if res.next != nil {
		t.Error("next was called")
	}
	if c := res.cookie(e.app.Session.CookieName); c != nil && c.MaxAge >= 0 {
		t.Errorf("a session cookie was set: %v", c)
	}
	id, ok := res.repl.GetString("http.request.uuid")
	if !ok || id == "" {
		t.Fatal("no {http.request.uuid} in the replacer")
	}
	ct := res.rec.Header().Get("Content-Type")
	if wantJSON {
		var body map[string]string
		if !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q; want JSON", ct)
		} else if err := json.Unmarshal(res.rec.Body.Bytes(), &body); err != nil {
			t.Errorf("body is not JSON: %v", err)
		} else if body["correlation_id"] != id || body["error"] != "store_unavailable" {
			t.Errorf("body = %v; want error store_unavailable and correlation_id %q", body, id)
		}
	} else {
		if !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type = %q; want an HTML page", ct)
		}
		if !strings.Contains(res.body(), `id="correlation-id">`+id+`<`) {
			t.Errorf("page does not show the correlation id %s:\n%s", id, res.body())
		}
	}
	for _, leak := range []string{errStoreDown.Error(), "10.9.8.7", "connection refused", "loading session"} {
		if strings.Contains(res.body(), leak) {
			t.Errorf("body leaks %q", leak)
		}
	}
	logged := false
	for _, le := range e.logsWith("correlation_id", id) {
		for _, f := range le.Context {
			if f.Key == "error" && strings.Contains(f.Interface.(error).Error(), errStoreDown.Error()) {
				logged = true
			}
		}
	}
	if !logged {
		t.Errorf("no log entry with correlation_id %s and the store error; logs: %v", id, e.logs.All())
	}
}

func TestFailClosedStoreDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      func(t *testing.T, e *testEnv) *http.Request
		wantJSON bool
	}{
		{"browser page", func(t *testing.T, e *testEnv) *http.Request {
			tok, _ := e.newSession(t, nil)
			r := httptest.NewRequest(http.MethodGet, "/reports", nil)
			r.Header.Set("Accept", "text/html,*/*")
			r.AddCookie(e.sessionCookie(tok))
			return r
		}, false},
		{"API call", func(t *testing.T, e *testEnv) *http.Request {
			tok, _ := e.newSession(t, nil)
			r := httptest.NewRequest(http.MethodGet, "/api/data", nil)
			r.Header.Set("Accept", "application/json")
			r.AddCookie(e.sessionCookie(tok))
			return r
		}, true},
		{"API write", func(t *testing.T, e *testEnv) *http.Request {
			tok, _ := e.newSession(t, nil)
			r := httptest.NewRequest(http.MethodPost, "/api/data", strings.NewReader("{}"))
			r.AddCookie(e.sessionCookie(tok))
			return r
		}, true},
		{"logout", func(t *testing.T, e *testEnv) *http.Request {
			tok, _ := e.newSession(t, nil)
			r := httptest.NewRequest(http.MethodPost, "/sso/logout", nil)
			r.AddCookie(e.sessionCookie(tok))
			return r
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			r := tt.req(t, e)
			e.store.failAll.Store(true)
			checkDenied(t, e, e.serve(t, r), http.StatusServiceUnavailable, tt.wantJSON)
		})
	}
}

// A failed renewal write loses only the idle-timeout extension: the session
// was verified, so the request passes and the failure is logged.
func TestRenewalFailureIsLoggedNotFatal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, _ := e.newSession(t, nil)
	e.clock.Advance(renewEvery(defaultIdleTimeout))
	e.store.failSave.Store(true)
	res := e.get(t, "/", e.sessionCookie(tok))
	if res.rec.Code != http.StatusOK || res.next == nil {
		t.Fatalf("status = %d, next called %v; want 200 and the request passed", res.rec.Code, res.next != nil)
	}
	if n := e.logs.FilterMessage("renewing session failed").Len(); n != 1 {
		t.Errorf("%d 'renewing session failed' log entries; want 1", n)
	}
}

// While the store is unreachable, a session this instance verified less than
// cache_ttl ago keeps working; once that is over, requests are refused (503).
func TestStoreOutageCachedSessionWithinCacheTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, _ := e.newSession(t, nil)
	if res := e.get(t, "/", e.sessionCookie(tok)); res.next == nil {
		t.Fatalf("warming the cache: status %d", res.rec.Code)
	}
	e.store.failAll.Store(true)
	e.clock.Advance(defaultCacheTTL - time.Second)
	if res := e.get(t, "/", e.sessionCookie(tok)); res.rec.Code != http.StatusOK || res.next == nil {
		t.Errorf("store down, session cached %v ago: status %d; want 200", defaultCacheTTL-time.Second, res.rec.Code)
	}
	e.clock.Advance(2 * time.Second)
	checkDenied(t, e, e.get(t, "/", e.sessionCookie(tok)), http.StatusServiceUnavailable, false)
}

func TestFailClosedHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, down := range []bool{false, true} {
		e.store.failAll.Store(down)
		res := e.get(t, "/sso/healthz")
		wantStatus, wantStore := http.StatusOK, "up"
		if down {
			wantStatus, wantStore = http.StatusServiceUnavailable, "down"
		}
		var body struct {
			Status    string
			Store     string
			Providers map[string]string
		}
		if err := json.Unmarshal(res.rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("store down %v: healthz body is not JSON: %v", down, err)
		}
		if res.rec.Code != wantStatus || body.Store != wantStore {
			t.Errorf("store down %v: healthz = %d, store %q; want %d, %q", down, res.rec.Code, body.Store, wantStatus, wantStore)
		}
		if len(body.Providers) != 3 || body.Providers["contoso"] != "ready" {
			t.Errorf("store down %v: providers = %v; want 3, ready", down, body.Providers)
		}
		if strings.Contains(res.body(), "refused") {
			t.Errorf("store down %v: healthz leaks the error: %s", down, res.body())
		}
	}
}

func TestFailClosedLogin(t *testing.T) {
	t.Parallel()
	t.Run("login start", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		e.store.failAll.Store(true)
		res := e.get(t, "/sso/login/contoso?rd=/x")
		checkDenied(t, e, res, http.StatusServiceUnavailable, false)
		if loc := res.rec.Header().Get("Location"); loc != "" {
			t.Errorf("Location = %q; want no redirect to the IdP", loc)
		}
	})
	t.Run("ACS, SP-initiated", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		ls := e.startLogin(t, "contoso", "/x")
		e.store.failAll.Store(true)
		res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay)
		checkDenied(t, e, res, http.StatusServiceUnavailable, false)
	})
	t.Run("ACS, IdP-initiated", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		e.store.failAll.Store(true)
		res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", "", samltest.User{}), "")
		checkDenied(t, e, res, http.StatusServiceUnavailable, false)
	})
	t.Run("ACS, session not saved", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		ls := e.startLogin(t, "contoso", "/x")
		e.store.failSave.Store(true)
		res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay)
		checkDenied(t, e, res, http.StatusServiceUnavailable, false)
	})
}

// A session deleted elsewhere (another instance, revoke-all) is dropped from
// this instance's cache as soon as the store announces it, well within the
// cache TTL, and App.RevokeUser ends every session of a user.
func TestRevocationDropsCachedSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	if err := e.app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.app.Stop() })
	tok, s := e.newSession(t, nil)
	if res := e.get(t, "/", e.sessionCookie(tok)); res.next == nil {
		t.Fatalf("warming the cache: status %d", res.rec.Code)
	}
	// Deleted behind this instance's back, as another instance would. The
	// feed is subscribed asynchronously by Start and is best effort, so the
	// delete is repeated (each one is announced) until it has been seen.
	deadline := time.Now().Add(time.Second)
	for {
		if err := e.mem.DeleteSession(context.Background(), s.ID); err != nil {
			t.Fatal(err)
		}
		res := e.get(t, "/", e.sessionCookie(tok))
		if res.next == nil {
			if res.rec.Code != http.StatusFound {
				t.Errorf("revoked session: status %d; want a redirect to sign in", res.rec.Code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a session deleted in the store still passed after 1s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// RevokeUser: both sessions of one user end, another user's stays.
	tokA, a := e.newSession(t, nil)
	tokB, _ := e.newSession(t, func(s *session.Session) { s.UserID = a.UserID })
	tokC, _ := e.newSession(t, func(s *session.Session) { s.UserID = "someone-else" })
	for _, tk := range []string{tokA, tokB, tokC} {
		e.get(t, "/", e.sessionCookie(tk))
	}
	n, err := e.app.RevokeUser(context.Background(), a.UserID)
	if err != nil || n != 2 {
		t.Fatalf("RevokeUser() = %d, %v; want 2, nil", n, err)
	}
	for tk, want := range map[string]bool{tokA: false, tokB: false, tokC: true} {
		if passed := e.get(t, "/", e.sessionCookie(tk)).next != nil; passed != want {
			t.Errorf("after RevokeUser, session passes = %v; want %v", passed, want)
		}
	}
}

// A session deleted in the store while this instance still has it cached
// is refused at its next renewal, and the renewal does not recreate it.
func TestRenewalDoesNotResurrectADeletedSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, s := e.newSession(t, nil)
	if res := e.get(t, "/", e.sessionCookie(tok)); res.next == nil {
		t.Fatalf("warming the cache: status %d", res.rec.Code)
	}
	if err := e.mem.DeleteSession(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	// Still cached (no revocation feed in this test), and due for renewal.
	e.clock.Advance(renewEvery(defaultIdleTimeout))
	e.app.sessions.put(s, e.clock.Now())
	if res := e.get(t, "/", e.sessionCookie(tok)); res.next != nil {
		t.Error("a session deleted in the store passed at its renewal")
	}
	if _, err := e.mem.LoadSession(context.Background(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("after the refused renewal, LoadSession() = %v; want the session still gone", err)
	}
}
