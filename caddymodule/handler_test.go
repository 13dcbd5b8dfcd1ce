package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// verifier returns a verifier of the env's identity tokens on its clock.
func (e *testEnv) verifier(t *testing.T) *engageauth.Verifier {
	t.Helper()
	v, err := engageauth.NewStaticVerifier(e.app.keys.JWKS(), engageauth.Options{Now: e.clock.Now, Leeway: -1})
	if err != nil {
		t.Fatalf("NewStaticVerifier() = %v", err)
	}
	return v
}

// headerVariants returns the values of every header of r whose name is
// name, ignoring case and '_' against '-'.
func headerVariants(h http.Header, name string) []string {
	var out []string
	for k, vs := range h {
		if normHeaderEqual(k, name) {
			out = append(out, vs...)
		}
	}
	return out
}

func TestFastPathIdentityToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, s := e.newSession(t, nil)

	res := e.get(t, "/reports?week=12", e.sessionCookie(tok))
	if res.next == nil {
		t.Fatalf("next was not called: %d\n%s", res.rec.Code, res.body())
	}
	jwts := headerVariants(res.next.Header, "X-Engage-Identity")
	if len(jwts) != 1 {
		t.Fatalf("next got %d X-Engage-Identity values; want exactly 1", len(jwts))
	}
	id, err := e.verifier(t).Verify(context.Background(), jwts[0])
	if err != nil {
		t.Fatalf("Verify(identity token) = %v", err)
	}
	want := engageauth.Identity{
		UserID: s.UserID, Email: s.Email, Name: "Alice Example", GivenName: "Alice", FamilyName: "Example",
		Role: "supervisor", Company: "contoso", Provider: "contoso",
		ObjectID: s.ObjectID, TenantID: testTenant, SessionID: s.ID,
	}
	got := *id
	got.IssuedAt, got.ExpiresAt = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("token identity = %+v; want %+v", got, want)
	}
	if ttl := id.ExpiresAt.Sub(id.IssuedAt); ttl != 5*time.Minute {
		t.Errorf("token lifetime = %v; want the default 5m", ttl)
	}
}

func TestFastPathStripsClientIdentityHeaders(t *testing.T) {
	t.Parallel()
	engage := []string{
		"X-Engage-Identity", "x-engage-identity", "X_Engage_Identity", "X-ENGAGE-IDENTITY",
		"X-Engage-Role", "x_engage_email", "X-Engage-User-Id",
	}
	tests := []struct {
		name       string
		header     string   // Handler.Header
		forged     []string // header names the client sends
		wantHeader string   // where the token must be
	}{
		{"default header", "", engage, "X-Engage-Identity"},
		{"custom header", "x-auth-identity", append([]string{"X-Auth-Identity", "x_auth_identity", "X-AUTH_IDENTITY"}, engage...), "X-Auth-Identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{header: tt.header})
			tok, _ := e.newSession(t, nil)
			newReq := func(cookie bool) *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				for _, k := range tt.forged {
					r.Header[k] = []string{"forged"} // raw keys: as a client may send them
				}
				r.Header.Set("X-Request-Id", "keep")
				if cookie {
					r.AddCookie(e.sessionCookie(tok))
				}
				return r
			}

			res := e.serve(t, newReq(true))
			if res.next == nil {
				t.Fatalf("next was not called: %d", res.rec.Code)
			}
			for k, vs := range res.next.Header {
				for _, v := range vs {
					if v == "forged" {
						t.Errorf("client-sent header %s reached next", k)
					}
				}
			}
			if got := res.next.Header.Get("X-Request-Id"); got != "keep" {
				t.Errorf("X-Request-Id reached next as %q; want other headers kept", got)
			}
			if vs := headerVariants(res.next.Header, tt.wantHeader); len(vs) != 1 {
				t.Errorf("next got %d %s values; want 1", len(vs), tt.wantHeader)
			} else if _, err := e.verifier(t).Verify(context.Background(), vs[0]); err != nil {
				t.Errorf("%s does not verify: %v", tt.wantHeader, err)
			}
			if tt.wantHeader != "X-Engage-Identity" {
				if vs := headerVariants(res.next.Header, "X-Engage-Identity"); len(vs) != 0 {
					t.Errorf("with a custom header, next still got X-Engage-Identity %q", vs)
				}
			}

			// Stripped on the way to a redirect too: nothing of the forged
			// request is passed on, and next is never called.
			res = e.serve(t, newReq(false))
			if res.next != nil || res.rec.Code != http.StatusFound {
				t.Errorf("without a session: next called %v, status %d; want not called, 302", res.next != nil, res.rec.Code)
			}
		})
	}
}

func TestFastPathPlainHeaders(t *testing.T) {
	t.Parallel()
	plain := map[string]string{
		"X-Engage-User-Id":  "user-1",
		"X-Engage-Email":    "alice@contoso.example",
		"X-Engage-Role":     "supervisor",
		"X-Engage-Company":  "contoso",
		"X-Engage-Provider": "contoso",
	}
	for _, on := range []bool{false, true} {
		e := newEnv(t, envConfig{plainHeaders: on})
		tok, _ := e.newSession(t, nil)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-Engage-Role", "account_holder") // forged
		r.AddCookie(e.sessionCookie(tok))
		res := e.serve(t, r)
		if res.next == nil {
			t.Fatalf("plain_headers %v: next was not called", on)
		}
		for k, want := range plain {
			got := res.next.Header.Values(k)
			switch {
			case on && (len(got) != 1 || got[0] != want):
				t.Errorf("plain_headers on: %s = %q; want [%q]", k, got, want)
			case !on && len(got) != 0:
				t.Errorf("plain_headers off: %s = %q; want none", k, got)
			}
		}
	}
}

func TestFastPathPlaceholders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, _ := e.newSession(t, nil)
	res := e.get(t, "/", e.sessionCookie(tok))
	if res.next == nil {
		t.Fatal("next was not called")
	}
	for k, want := range map[string]string{
		"http.auth.user.id":       "user-1",
		"http.auth.user.email":    "alice@contoso.example",
		"http.auth.user.role":     "supervisor",
		"http.auth.user.company":  "contoso",
		"http.auth.user.provider": "contoso",
	} {
		if got, _ := res.repl.GetString(k); got != want {
			t.Errorf("{%s} = %q; want %q", k, got, want)
		}
	}
}

func TestFastPathRemovesOwnCookies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, _ := e.newSession(t, nil)
	own := "engage_sso=" + tok
	binding := "engage_sso_login=" + strings.Repeat("b", 43)
	tests := []struct {
		name   string
		cookie []string // Cookie header lines sent
		want   []string // Cookie header lines next must see
	}{
		{"only ours", []string{own}, nil},
		{"ours and the login binding", []string{own + "; " + binding}, nil},
		{"others kept in order", []string{"a=1; " + own + "; b=2; " + binding + "; c=3"}, []string{"a=1; b=2; c=3"}},
		{"names that merely contain ours", []string{own + "; engage_sso_pref=dark; xengage_sso=1"}, []string{"engage_sso_pref=dark; xengage_sso=1"}},
		{"quoted value kept quoted", []string{own + `; q="quoted value"`}, []string{`q="quoted value"`}},
		{"value net/http cannot parse kept", []string{own + `; prefs={"a":1}; csrf=x\y`}, []string{`prefs={"a":1}; csrf=x\y`}},
		{"several Cookie lines", []string{"a=1", own, "b=2"}, []string{"a=1; b=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header["Cookie"] = tt.cookie
			res := e.serve(t, r)
			if res.next == nil {
				t.Fatalf("next was not called: %d", res.rec.Code)
			}
			got := res.next.Header["Cookie"]
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Cookie %q reached next as %q; want %q", tt.cookie, got, tt.want)
			}
		})
	}
}

func TestFastPathTokenCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, _ := e.newSession(t, nil)
	v := e.verifier(t)
	token := func() string {
		t.Helper()
		res := e.get(t, "/", e.sessionCookie(tok))
		if res.next == nil {
			t.Fatalf("at %v: next was not called: %d", e.clock.Now(), res.rec.Code)
		}
		jwt := res.next.Header.Get("X-Engage-Identity")
		if _, err := v.Verify(context.Background(), jwt); err != nil {
			t.Fatalf("at %v: token does not verify: %v", e.clock.Now(), err)
		}
		return jwt
	}

	first := token()
	if again := token(); again != first {
		t.Error("second request minted a new token; want the cached one")
	}
	e.clock.Advance(3*time.Minute + 59*time.Second) // more than a fifth of 5m left
	if again := token(); again != first {
		t.Error("token with 1m01s left was re-minted; want the cached one")
	}
	e.clock.Advance(2 * time.Second) // 59s left: less than a fifth
	fresh := token()
	if fresh == first {
		t.Error("token with 59s left was reused; want a new one")
	}
	if again := token(); again != fresh {
		t.Error("the re-minted token was not cached")
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{}) // idle timeout 2h
	tok, s := e.newSession(t, nil)
	e.clock.Advance(2 * time.Hour)

	res := e.get(t, "/reports?week=12", e.sessionCookie(tok))
	if res.next != nil || res.rec.Code != http.StatusFound {
		t.Fatalf("idle session: next called %v, status %d; want a 302 to sign in", res.next != nil, res.rec.Code)
	}
	if loc := res.rec.Header().Get("Location"); loc != "/sso/login?rd=%2Freports%3Fweek%3D12" {
		t.Errorf("Location = %q; want the login page with rd", loc)
	}
	if _, err := e.mem.LoadSession(context.Background(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadSession(idle session) = %v; want it deleted", err)
	}
	if n := e.store.deletes.Load(); n != 1 {
		t.Errorf("DeleteSession called %d times; want 1", n)
	}
}

func TestSessionAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{}) // idle 2h, lifetime 12h

	// Still in the store and used within the idle timeout, but past its
	// end: the handler refuses it and deletes it.
	tok, _ := e.newSession(t, func(s *session.Session) { s.ExpiresAt = s.CreatedAt.Add(time.Hour) })
	e.clock.Advance(time.Hour)
	if res := e.get(t, "/", e.sessionCookie(tok)); res.next != nil || res.rec.Code != http.StatusFound {
		t.Errorf("past ExpiresAt: next called %v, status %d; want a 302 to sign in", res.next != nil, res.rec.Code)
	}
	if n := e.store.deletes.Load(); n != 1 {
		t.Errorf("past ExpiresAt: DeleteSession called %d times; want 1", n)
	}

	tok, s := e.newSession(t, nil)
	// Active every hour: the idle timeout is pushed back each time, but the
	// session still ends 12h after sign-in.
	for h := 1; h < 12; h++ {
		e.clock.Advance(time.Hour)
		if res := e.get(t, "/", e.sessionCookie(tok)); res.next == nil {
			t.Fatalf("after %dh of activity: status %d; want the session to be valid", h, res.rec.Code)
		}
	}
	e.clock.Advance(time.Hour)
	if res := e.get(t, "/", e.sessionCookie(tok)); res.next != nil || res.rec.Code != http.StatusFound {
		t.Errorf("at the end of the lifetime: next called %v, status %d; want a 302 to sign in", res.next != nil, res.rec.Code)
	}
	if _, err := e.mem.LoadSession(context.Background(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadSession(ended session) = %v; want it deleted", err)
	}
}

func TestSessionSlidingRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{}) // idle 2h: renewed at most once a minute
	tok, s := e.newSession(t, nil)
	t0 := s.LastSeen
	steps := []struct {
		at        time.Duration // since sign-in
		wantSaves int32         // SaveSession calls so far
		wantSeen  time.Duration // LastSeen in the store, since sign-in
	}{
		{0, 0, 0},
		{30 * time.Second, 0, 0},
		{59 * time.Second, 0, 0},
		{60 * time.Second, 1, 60 * time.Second},
		{61 * time.Second, 1, 60 * time.Second},
		{119 * time.Second, 1, 60 * time.Second},
		{120 * time.Second, 2, 120 * time.Second},
		{150 * time.Second, 2, 120 * time.Second},
		{110 * time.Minute, 3, 110 * time.Minute}, // would have idled out at 2h without the renewals
		{3 * time.Hour, 4, 3 * time.Hour},
	}
	for _, st := range steps {
		e.clock.Advance(t0.Add(st.at).Sub(e.clock.Now()))
		if res := e.get(t, "/", e.sessionCookie(tok)); res.next == nil {
			t.Fatalf("at +%v: status %d; want the session to be valid", st.at, res.rec.Code)
		}
		if n := e.store.saves.Load(); n != st.wantSaves {
			t.Errorf("at +%v: session writes (SaveSession, RenewSession): %d; want %d", st.at, n, st.wantSaves)
		}
		stored, err := e.mem.LoadSession(context.Background(), s.ID)
		if err != nil {
			t.Fatalf("at +%v: LoadSession() = %v", st.at, err)
		}
		if got := stored.LastSeen.Sub(t0); got != st.wantSeen {
			t.Errorf("at +%v: stored LastSeen = +%v; want +%v", st.at, got, st.wantSeen)
		}
	}
}

func TestSessionGarbageCookieNeverTouchesStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, v := range []string{
		"",
		"x",
		strings.Repeat("A", 42),
		strings.Repeat("A", 44),
		strings.Repeat("A", 42) + ".",
		strings.Repeat("A", 42) + "+",
		strings.Repeat("A", 42) + "=",
		strings.Repeat("é", 21) + "A",
		strings.Repeat("A", 4096),
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", "engage_sso="+v)
		res := e.serve(t, r)
		if res.next != nil || res.rec.Code != http.StatusFound {
			t.Errorf("cookie %.20q: next called %v, status %d; want a 302 to sign in", v, res.next != nil, res.rec.Code)
		}
	}
	if n := e.store.calls(); n != 0 {
		t.Errorf("garbage cookies made %d store calls; want 0", n)
	}
	// A well-formed but unknown token is looked up once, and refused.
	unknown, _, _ := session.NewToken(nil)
	if res := e.get(t, "/", e.sessionCookie(unknown)); res.next != nil || res.rec.Code != http.StatusFound {
		t.Errorf("unknown token: next called %v, status %d; want a 302", res.next != nil, res.rec.Code)
	}
	if n := e.store.loads.Load(); n != 1 {
		t.Errorf("unknown token: LoadSession called %d times; want 1", n)
	}
}

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tests := []struct {
		method, target string
		header         map[string]string
		wantStatus     int
	}{
		{http.MethodGet, "/reports?week=12&q=a%20b", map[string]string{"Accept": "text/html"}, http.StatusFound},
		{http.MethodGet, "/", nil, http.StatusFound},
		{http.MethodGet, "/api/data?x=1", map[string]string{"Accept": "application/json"}, http.StatusUnauthorized},
		{http.MethodGet, "/api/data", map[string]string{"X-Requested-With": "XMLHttpRequest"}, http.StatusUnauthorized},
		{http.MethodPost, "/api/data", map[string]string{"Accept": "text/html"}, http.StatusUnauthorized},
		{http.MethodPut, "/api/data/1", nil, http.StatusUnauthorized},
		{http.MethodDelete, "/api/data/1", nil, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		for k, v := range tt.header {
			r.Header.Set(k, v)
		}
		res := e.serve(t, r)
		if res.next != nil {
			t.Errorf("%s %s: next was called", tt.method, tt.target)
		}
		if res.rec.Code != tt.wantStatus {
			t.Errorf("%s %s = %d; want %d", tt.method, tt.target, res.rec.Code, tt.wantStatus)
			continue
		}
		var login string
		if tt.wantStatus == http.StatusFound {
			login = res.rec.Header().Get("Location")
			if cc := res.rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s %s: Cache-Control = %q; want no-store", tt.method, tt.target, cc)
			}
		} else {
			var body map[string]string
			if err := json.Unmarshal(res.rec.Body.Bytes(), &body); err != nil {
				t.Errorf("%s %s: body is not JSON: %v\n%s", tt.method, tt.target, err, res.body())
				continue
			}
			if body["error"] != "unauthenticated" {
				t.Errorf("%s %s: error = %q; want unauthenticated", tt.method, tt.target, body["error"])
			}
			if ct := res.rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s %s: Content-Type = %q; want JSON", tt.method, tt.target, ct)
			}
			if res.rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: no WWW-Authenticate header", tt.method, tt.target)
			}
			login = body["login_url"]
		}
		u, err := url.Parse(login)
		if err != nil || u.Path != "/sso/login" || u.Query().Get("rd") != tt.target {
			t.Errorf("%s %s: login URL %q; want /sso/login with rd=%q", tt.method, tt.target, login, tt.target)
		}
	}
}
