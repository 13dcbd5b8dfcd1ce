package hookcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/token"
	"github.com/engage-sso/engage-sso/internal/demoapp"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// demo is the demo upstream's hook, a correct implementation, optionally
// broken by a wrapper.
type demo struct {
	srv    *httptest.Server
	minter *token.Minter
}

func newDemo(t *testing.T, wrap func(next http.Handler, valid func() string) http.Handler) *demo {
	t.Helper()
	key, err := token.GenerateKey(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := &demo{minter: &token.Minter{Keys: token.NewKeySet(key)}}
	jwks := d.minter.Keys.JWKS()
	idv, err := engageauth.NewStaticVerifier(jwks, engageauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hookv, err := engageauth.NewStaticVerifier(jwks, engageauth.Options{Audience: "user-hook"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := demoapp.New(demoapp.Config{Verifier: idv, HookVerifier: hookv})
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		h = wrap(h, func() string { tok, _ := d.token(context.Background()); return tok })
	}
	d.srv = httptest.NewServer(h)
	t.Cleanup(d.srv.Close)
	return d
}

func (d *demo) token(context.Context) (string, error) {
	return d.minter.MintAudience("user-hook", "hookcheck", time.Minute)
}

func (d *demo) target() Target {
	return Target{
		BaseURL:    d.srv.URL + "/hook",
		HTTPClient: d.srv.Client(),
		Token:      d.token,
		TokenForAudience: func(_ context.Context, aud string) (string, error) {
			return d.minter.MintAudience(aud, "hookcheck", time.Minute)
		},
	}
}

// remaining lists the users the demo holds in both test companies.
func (d *demo) remaining(t *testing.T) int {
	t.Helper()
	n := 0
	for _, company := range []string{DefaultCompany, DefaultOtherCompany} {
		req, _ := http.NewRequest(http.MethodGet, d.srv.URL+"/hook/users?limit=500&company="+company, nil)
		tok, _ := d.token(context.Background())
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := d.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct{ Users []json.RawMessage }
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Users)
	}
	return n
}

// rewrite returns a wrapper that edits the requests and the answers of a
// hook.
func rewrite(req func(*http.Request, func() string), body func(r *http.Request, status int, body []byte) (int, []byte)) func(http.Handler, func() string) http.Handler {
	return func(next http.Handler, valid func() string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if req != nil {
				req(r, valid)
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			status, out := rec.Code, rec.Body.Bytes()
			if body != nil {
				status, out = body(r, status, out)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			_, _ = w.Write(out)
		})
	}
}

// TestCheckPassesOnDemo: the demo passes every check and is left without
// test users.
func TestCheckPassesOnDemo(t *testing.T) {
	t.Parallel()
	d := newDemo(t, nil)
	results := Check(context.Background(), d.target())
	if len(results) < 20 {
		t.Errorf("Check ran %d checks; want the whole suite", len(results))
	}
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("check %q failed on the demo: %v", r.Name, r.Err)
		}
	}
	if n := d.remaining(t); n != 0 {
		t.Errorf("%d test users left after Check; want none", n)
	}
}

// TestCheckFindsFaults breaks the demo in one way at a time: the checks
// about that rule must fail, and cleanup must still leave no user.
func TestCheckFindsFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		wrap     func(http.Handler, func() string) http.Handler
		wantFail []string
	}{
		{
			name: "no authentication",
			wrap: rewrite(func(r *http.Request, valid func() string) { r.Header.Set("Authorization", "Bearer "+valid()) }, nil),
			wantFail: []string{"auth/no token", "auth/malformed token", "auth/token from an unknown key",
				"auth/token for another audience"},
		},
		{
			name:     "idempotency key ignored",
			wrap:     rewrite(func(r *http.Request, _ func() string) { r.Header.Del("Idempotency-Key") }, nil),
			wantFail: []string{"create/idempotent retry"},
		},
		{
			name: "duplicates allowed",
			wrap: rewrite(nil, func(_ *http.Request, status int, body []byte) (int, []byte) {
				if status == http.StatusConflict {
					return http.StatusCreated, []byte(`{"id":"fake","email":"x@y.z","company":"hookcheck"}`)
				}
				return status, body
			}),
			wantFail: []string{"create/duplicate email", "create/duplicate external id", "update/duplicate email"},
		},
		{
			name: "null instead of no users",
			wrap: rewrite(nil, func(_ *http.Request, status int, body []byte) (int, []byte) {
				return status, bytes.Replace(body, []byte(`"users":[]`), []byte(`"users":null`), 1)
			}),
			wantFail: []string{"find by email/none", "find by external id/none"},
		},
		{
			name: "no paging",
			wrap: rewrite(func(r *http.Request, _ func() string) {
				q := r.URL.Query()
				q.Del("limit")
				r.URL.RawQuery = q.Encode()
			}, nil),
			wantFail: []string{"list/paging"},
		},
		{
			name: "case-sensitive email",
			wrap: rewrite(nil, func(r *http.Request, status int, body []byte) (int, []byte) {
				// Finds the test users only when asked in the case they
				// were created with, which mixes cases.
				if e := r.URL.Query().Get("email"); e != "" && (e == strings.ToLower(e) || e == strings.ToUpper(e)) {
					return status, []byte(`{"users":[]}`)
				}
				return status, body
			}),
			wantFail: []string{"find by email"},
		},
		{
			name: "plain-text errors",
			wrap: rewrite(nil, func(_ *http.Request, status int, body []byte) (int, []byte) {
				if status >= 400 {
					return status, []byte("error")
				}
				return status, body
			}),
			wantFail: []string{"auth/no token", "get/unknown", "create/invalid", "delete"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDemo(t, tt.wrap)
			failed := map[string]bool{}
			for _, r := range Check(context.Background(), d.target()) {
				if !r.Passed() {
					failed[r.Name] = true
					if r.Err.Error() == "" {
						t.Errorf("check %q failed without a reason", r.Name)
					}
				}
			}
			for _, name := range tt.wantFail {
				if !failed[name] {
					t.Errorf("check %q passed against a hook with %s; want it to fail (failed: %v)", name, tt.name, failed)
				}
			}
			if failed["cleanup"] {
				t.Errorf("cleanup failed")
			}
			if n := d.remaining(t); n != 0 {
				t.Errorf("%d test users left after Check; want none", n)
			}
		})
	}
}

func TestCheckSetup(t *testing.T) {
	t.Parallel()
	tok := func(context.Context) (string, error) { return "t", nil }
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{"no URL", Target{Token: tok}, "not an absolute"},
		{"bad URL", Target{BaseURL: "http://x/%zz", Token: tok}, "parsing base URL"},
		{"no token", Target{BaseURL: "http://x"}, "no token function"},
		{"same companies", Target{BaseURL: "http://x", Token: tok, Company: "a", OtherCompany: "a"}, "both"},
	}
	for _, tt := range tests {
		results := Check(context.Background(), tt.target)
		if len(results) != 1 || results[0].Name != "setup" || results[0].Err == nil || !strings.Contains(results[0].Err.Error(), tt.want) {
			t.Errorf("%s: Check = %+v; want one setup failure mentioning %q", tt.name, results, tt.want)
		}
	}
}

// TestCheckUnreachable: every check fails, none panics, when the hook is
// down.
func TestCheckUnreachable(t *testing.T) {
	t.Parallel()
	// A server that hangs up at once; a closed server's port could be
	// reused by another test's server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	results := Check(context.Background(), Target{
		BaseURL: "http://" + ln.Addr().String(), Token: func(context.Context) (string, error) { return "a.b.c", nil },
	})
	for _, r := range results {
		if r.Passed() {
			t.Errorf("check %q passed against a closed server", r.Name)
		}
	}
}

// TestRun runs the suite as subtests against the demo.
func TestRun(t *testing.T) {
	t.Parallel()
	Run(t, newDemo(t, nil).target())
}
