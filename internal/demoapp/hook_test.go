package demoapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/directory"
	"github.com/engage-sso/engage-sso/caddymodule/token"
	"github.com/engage-sso/engage-sso/internal/hookcheck"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hookFixture is the demo app with the hook enabled, served over HTTP, and
// a minter whose keys both of its verifiers trust.
type hookFixture struct {
	srv    *httptest.Server
	minter *token.Minter
	clock  *clock
}

// newHookFixture serves the demo with the given data file ("" for memory).
func newHookFixture(t *testing.T, dataFile string) *hookFixture {
	t.Helper()
	f := &hookFixture{clock: &clock{t: testNow}}
	h, err := f.newHandler(t, dataFile)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// newHandler builds a demo app on f's keys and clock.
func (f *hookFixture) newHandler(t *testing.T, dataFile string) (http.Handler, error) {
	t.Helper()
	if f.minter == nil {
		key, err := token.GenerateKey(nil, testNow)
		if err != nil {
			t.Fatal(err)
		}
		f.minter = &token.Minter{Keys: token.NewKeySet(key), Now: f.clock.now}
	}
	jwks := f.minter.Keys.JWKS()
	idv, err := engageauth.NewStaticVerifier(jwks, engageauth.Options{Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	hookv, err := engageauth.NewStaticVerifier(jwks, engageauth.Options{Audience: DefaultHookAudience, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Verifier: idv, HookVerifier: hookv, DataFile: dataFile, Now: f.clock.now})
}

// hookToken mints a user hook token for sub.
func (f *hookFixture) hookToken(t *testing.T, sub string) string {
	t.Helper()
	tok, err := f.minter.MintAudience(DefaultHookAudience, sub, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// identityToken mints an identity token.
func (f *hookFixture) identityToken(t *testing.T, role, company string) string {
	t.Helper()
	tok, _, err := f.minter.Mint(token.Claims{Subject: "u-viewer", Email: "viewer@example.com", Role: role, Company: company})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// target is the fixture as a hookcheck target.
func (f *hookFixture) target() hookcheck.Target {
	return hookcheck.Target{
		BaseURL:    f.srv.URL + "/hook",
		HTTPClient: f.srv.Client(),
		Token: func(context.Context) (string, error) {
			return f.minter.MintAudience(DefaultHookAudience, "hookcheck", time.Minute)
		},
		TokenForAudience: func(_ context.Context, aud string) (string, error) {
			return f.minter.MintAudience(aud, "hookcheck", time.Minute)
		},
	}
}

// call sends one request to the fixture and returns status and body.
func (f *hookFixture) call(t *testing.T, method, path, auth string, body string, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHookContract runs the reusable contract suite against the demo.
func TestHookContract(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		hookcheck.Run(t, newHookFixture(t, "").target())
	})
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		hookcheck.Run(t, newHookFixture(t, t.TempDir()+"/users.json").target())
	})
}

// TestDirectoryClient drives the demo hook with engage-sso's own client.
func TestDirectoryClient(t *testing.T) {
	t.Parallel()
	f := newHookFixture(t, "")
	c, err := directory.New(directory.Config{
		BaseURL:    f.srv.URL + "/hook",
		HTTPClient: f.srv.Client(),
		Token: func(context.Context) (string, error) {
			return f.minter.MintAudience(DefaultHookAudience, "jit", time.Minute)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in := directory.User{Email: "Ada@Contoso.com", GivenName: "Ada", Role: directory.RoleAgent, Active: true,
		Company: "contoso", ExternalID: "oid-ada", Provider: "contoso"}
	ada, err := c.Create(ctx, in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := c.Create(ctx, in); !errors.Is(err, directory.ErrConflict) {
		t.Errorf("second Create with a new key = %v; want ErrConflict", err)
	}
	for name, find := range map[string]func() (*directory.User, error){
		"FindByEmail":      func() (*directory.User, error) { return c.FindByEmail(ctx, "contoso", "ada@contoso.com") },
		"FindByExternalID": func() (*directory.User, error) { return c.FindByExternalID(ctx, "contoso", "oid-ada") },
		"Get":              func() (*directory.User, error) { return c.Get(ctx, ada.ID) },
	} {
		if u, err := find(); err != nil || *u != *ada {
			t.Errorf("%s = %+v, %v; want %+v", name, u, err, ada)
		}
	}
	if _, err := c.FindByEmail(ctx, "fabrikam", "ada@contoso.com"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("FindByEmail in another company = %v; want ErrNotFound", err)
	}
	role := directory.RoleAccountHolder
	if u, err := c.Update(ctx, ada.ID, directory.Patch{Role: &role}); err != nil || u.Role != role || u.GivenName != "Ada" {
		t.Errorf("Update = %+v, %v; want role %s and names kept", u, err, role)
	}
	if err := c.Deactivate(ctx, ada.ID); err != nil {
		t.Errorf("Deactivate: %v", err)
	}
	users, next, err := c.List(ctx, "contoso", "", 10)
	if err != nil || len(users) != 1 || users[0].Active || next != "" {
		t.Errorf("List = %+v, %q, %v; want the one inactive user", users, next, err)
	}
	if err := c.Delete(ctx, ada.ID); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if _, err := c.Get(ctx, ada.ID); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Get after Delete = %v; want ErrNotFound", err)
	}
}

// TestTokensDoNotCross: a hook token opens no page and an identity token
// no hook operation.
func TestTokensDoNotCross(t *testing.T) {
	t.Parallel()
	f := newHookFixture(t, "")
	hookTok := f.hookToken(t, "jit")
	for _, path := range []string{"/", "/api/me", "/users"} {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
		req.Header.Set("X-Engage-Identity", hookTok)
		req.Header.Set("Authorization", "Bearer "+hookTok)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a hook token: status %d; want 401", path, resp.StatusCode)
		}
	}
	idTok := f.identityToken(t, engageauth.RoleAccountHolder, "contoso")
	if status, body := f.call(t, http.MethodGet, "/hook/users?company=contoso", "Bearer "+idTok, ""); status != http.StatusUnauthorized ||
		!strings.Contains(body, `"code":"unauthorized"`) {
		t.Errorf("hook with an identity token: %d %s; want 401 unauthorized", status, body)
	}
}

// TestHookDisabled: without a hook verifier /hook/ is an ordinary page
// behind the identity middleware.
func TestHookDisabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.serve(http.MethodGet, "/hook/users?company=acme", nil)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "missing_identity") {
		t.Errorf("GET /hook/users without hook: %d %q; want the identity middleware's 401", rec.Code, rec.Body)
	}
}

func TestHookRequests(t *testing.T) {
	t.Parallel()
	f := newHookFixture(t, "")
	auth := "Bearer " + f.hookToken(t, "jit")
	long, err := f.minter.MintAudience(DefaultHookAudience, "jit", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const ada = `{"email":"ada@contoso.com","role":"agent","company":"contoso"}`
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		body       string
		header     []string
		wantStatus int
		wantBody   string
	}{
		{"long-lived token", "GET", "/hook/users?company=contoso", "Bearer " + long, "", nil, 401, `"code":"unauthorized"`},
		{"two schemes", "GET", "/hook/users?company=contoso", "Basic x", "", nil, 401, `"code":"unauthorized"`},
		{"unknown path", "GET", "/hook/groups", auth, "", nil, 404, `"code":"not_found"`},
		{"unknown sub-path", "GET", "/hook/users/u1/roles", auth, "", nil, 404, `"code":"not_found"`},
		{"wrong method", "PUT", "/hook/users/u1", auth, ada, nil, 405, `"code":"method_not_allowed"`},
		{"no company", "GET", "/hook/users?email=ada@contoso.com", auth, "", nil, 400, `"code":"invalid"`},
		{"email and external id", "GET", "/hook/users?company=c&email=a@b.c&external_id=x", auth, "", nil, 400, `"code":"invalid"`},
		{"bad cursor", "GET", "/hook/users?company=c&cursor=%21", auth, "", nil, 400, `"code":"invalid"`},
		{"bad limit", "GET", "/hook/users?company=c&limit=501", auth, "", nil, 400, `"code":"invalid"`},
		{"malformed body", "POST", "/hook/users", auth, `{"email":`, nil, 400, `"code":"invalid"`},
		{"two bodies", "POST", "/hook/users", auth, ada + ada, nil, 400, `"code":"invalid"`},
		{"huge body", "POST", "/hook/users", auth, `{"email":"` + strings.Repeat("a", maxHookBody) + `"}`, nil, 400, `"code":"invalid"`},
		{"bad key", "POST", "/hook/users", auth, ada, []string{"Idempotency-Key", "a b"}, 400, `"code":"invalid"`},
		{"long name", "POST", "/hook/users", auth,
			`{"email":"ada@contoso.com","role":"agent","company":"contoso","given_name":"` + strings.Repeat("a", 257) + `"}`, nil, 422, `"code":"invalid"`},
		{"email with name", "POST", "/hook/users", auth, `{"email":"Ada <ada@contoso.com>","role":"agent","company":"c"}`, nil, 422, `"code":"invalid"`},
		{"email without dot", "POST", "/hook/users", auth, `{"email":"ada@localhost","role":"agent","company":"c"}`, nil, 422, `"code":"invalid"`},
		{"patch to bad role", "PATCH", "/hook/users/u-missing", auth, `{"role":"root"}`, nil, 404, `"code":"not_found"`},
		{"create", "POST", "/hook/users", auth, ada, nil, 201, `"active":true`},
	}
	for _, tt := range tests { // in order: not parallel
		status, body := f.call(t, tt.method, tt.path, tt.auth, tt.body, tt.header...)
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %s %s = %d %s; want %d with %s", tt.name, tt.method, tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/hook/users/u1", strings.NewReader(ada))
	req.Header.Set("Authorization", auth)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Allow"); got != "GET, PATCH, DELETE" {
		t.Errorf("PUT /hook/users/u1: Allow = %q; want %q", got, "GET, PATCH, DELETE")
	}
}

// TestIdempotencyKeys covers the key rules beyond hookcheck's: a reused key
// with another body, a key whose user was deleted, and expiry.
func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	f := newHookFixture(t, "")
	auth := "Bearer " + f.hookToken(t, "jit")
	create := func(body, key string) (int, directory.User) {
		t.Helper()
		status, out := f.call(t, "POST", "/hook/users", auth, body, "Idempotency-Key", key)
		var u directory.User
		_ = json.Unmarshal([]byte(out), &u)
		return status, u
	}
	const ada = `{"email":"ada@contoso.com","role":"agent","company":"contoso"}`
	status, first := create(ada, "k1")
	if status != 201 {
		t.Fatalf("create: status %d", status)
	}
	if status, _ := create(`{"email":"bob@contoso.com","role":"agent","company":"contoso"}`, "k1"); status != 422 {
		t.Errorf("key reused with another body: status %d; want 422", status)
	}
	if status, again := create(ada, "k1"); status != 200 || again.ID != first.ID {
		t.Errorf("replay: %d %s; want 200 %s", status, again.ID, first.ID)
	}
	if status, _ := f.call(t, "DELETE", "/hook/users/"+first.ID, auth, ""); status != 204 {
		t.Fatalf("delete: status %d", status)
	}
	status, second := create(ada, "k1")
	if status != 201 || second.ID == first.ID {
		t.Errorf("key of a deleted user: %d %s; want 201 with a new user", status, second.ID)
	}
	// After a day the key is forgotten: the same request is a new create,
	// refused as a duplicate.
	f.clock.advance(idempotencyTTL + time.Minute)
	auth = "Bearer " + f.hookToken(t, "jit")
	if status, _ := f.call(t, "POST", "/hook/users", auth, `{"email":"x@contoso.com","role":"agent","company":"c"}`); status != 201 {
		t.Fatalf("create: status %d", status)
	}
	if status, body := f.call(t, "POST", "/hook/users", auth, ada, "Idempotency-Key", "k1"); status != 409 ||
		!bytes.Contains([]byte(body), []byte("duplicate_email")) {
		t.Errorf("expired key: %d %s; want 409 duplicate_email", status, body)
	}
}
