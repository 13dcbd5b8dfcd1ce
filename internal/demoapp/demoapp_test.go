package demoapp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/pkg/engageauth"
	"github.com/golang-jwt/jwt/v5"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a demo app with a static verifier and a key to sign tokens.
type fixture struct {
	handler http.Handler
	priv    *ecdsa.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(raw[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(raw[33:]),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := engageauth.NewStaticVerifier(jwks, engageauth.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Verifier: v})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &fixture{handler: h, priv: priv}
}

func (f *fixture) token(t *testing.T, role string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "engage-sso", "aud": "engage", "sub": "user-42",
		"email": "ada@example.com", "name": "Ada <Lovelace>", "given_name": "Ada",
		"family_name": "Lovelace", "role": role, "company": "acme",
		"provider": "acme-azure", "oid": "object-1", "tid": "tenant-1", "sid": "sess-1",
		"iat": testNow.Unix(), "nbf": testNow.Unix(), "exp": testNow.Add(5 * time.Minute).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(f.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve runs one request; headers are added raw, without canonicalisation,
// as a proxy could forward them.
func (f *fixture) serve(method, target string, header map[string][]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		req.Header[k] = append(req.Header[k], vs...)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

// element returns the text of the element with the given id.
func element(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `">([^<]*)<`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no element id=%q:\n%s", id, page)
	}
	return m[1]
}

func TestNewRequiresVerifier(t *testing.T) {
	t.Parallel()
	if h, err := New(Config{}); err == nil || h != nil {
		t.Errorf("New(Config{}) = %v, %v; want nil, error", h, err)
	}
}

func TestRejectsWithoutValidToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name     string
		header   map[string][]string
		wantBody string
	}{
		{"no header", nil, `{"error":"missing_identity"}`},
		{"only plain headers", map[string][]string{"X-Engage-Email": {"ada@example.com"}, "X-Engage-Role": {"account_holder"}}, `{"error":"missing_identity"}`},
		{"forged token", map[string][]string{"X-Engage-Identity": {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}}, `{"error":"invalid_identity"}`},
	}
	for _, tt := range tests {
		for _, target := range []string{"/", "/reports", "/api/me"} {
			t.Run(tt.name+" "+target, func(t *testing.T) {
				t.Parallel()
				rec := f.serve(http.MethodGet, target, tt.header)
				if rec.Code != http.StatusUnauthorized {
					t.Errorf("GET %s status = %d; want 401", target, rec.Code)
				}
				if got := strings.TrimSpace(rec.Body.String()); got != tt.wantBody {
					t.Errorf("GET %s body = %q; want %q", target, got, tt.wantBody)
				}
			})
		}
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		role, wantLabel string
		target          string
		wantPath        string
		wantQuery       string
	}{
		{engageauth.RoleSupervisor, "Supervisor", "/", "/", ""},
		{engageauth.RoleAgent, "Agent", "/reports/today?team=7", "/reports/today", "team=7"},
		{engageauth.RoleAccountHolder, "Account holder", "/admin/%3Cscript%3E", "/admin/&lt;script&gt;", ""},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			t.Parallel()
			rec := f.serve(http.MethodGet, tt.target, map[string][]string{"X-Engage-Identity": {f.token(t, tt.role)}})
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s status = %d; want 200; body %q", tt.target, rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q; want HTML", ct)
			}
			page := rec.Body.String()
			checks := map[string]string{
				"role":             tt.role,
				"role-label":       tt.wantLabel,
				"email":            "ada@example.com",
				"name":             "Ada &lt;Lovelace&gt;", // escaped
				"company":          "acme",
				"provider":         "acme-azure",
				"user-id":          "user-42",
				"oid":              "object-1",
				"tid":              "tenant-1",
				"expires-at":       "2030-01-02T03:09:05Z",
				"path":             tt.wantPath,
				"query":            tt.wantQuery,
				"identity-headers": "1",
			}
			for id, want := range checks {
				if got := element(t, page, id); got != want {
					t.Errorf("GET %s: element %q = %q; want %q", tt.target, id, got, want)
				}
			}
			for _, want := range []string{"<title>Engage (demo)</title>", `href="/sso/logout"`} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
		})
	}
}

// TestPageCountsForgedHeaders sends, next to a valid token, identity headers
// spelled differently: the page must count them all, which is how the
// end-to-end test proves the proxy strips client-sent variants.
func TestPageCountsForgedHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name   string
		extra  map[string][]string
		wantN  string
		status int
	}{
		{"none", nil, "1", http.StatusOK},
		{"underscores", map[string][]string{"X_Engage_Identity": {"forged"}}, "2", http.StatusOK},
		{"lower case and underscores", map[string][]string{"x-engage_identity": {"a", "b"}, "X_ENGAGE_IDENTITY": {"c"}}, "4", http.StatusOK},
		{"other headers", map[string][]string{"X-Engage-Identity-Extra": {"x"}, "X-Engage-Email": {"x"}}, "1", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := map[string][]string{"X-Engage-Identity": {f.token(t, engageauth.RoleAgent)}}
			for k, v := range tt.extra {
				header[k] = v
			}
			rec := f.serve(http.MethodGet, "/", header)
			if rec.Code != tt.status {
				t.Fatalf("status = %d; want %d", rec.Code, tt.status)
			}
			if got := element(t, rec.Body.String(), "identity-headers"); got != tt.wantN {
				t.Errorf("identity-headers = %q; want %q", got, tt.wantN)
			}
		})
	}

	// A second canonical value is refused outright by the middleware.
	tok := f.token(t, engageauth.RoleAgent)
	if rec := f.serve(http.MethodGet, "/", map[string][]string{"X-Engage-Identity": {tok, tok}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("two X-Engage-Identity values: status = %d; want 401", rec.Code)
	}
}

func TestCountHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header http.Header
		name   string
		want   int
	}{
		{nil, "X-Engage-Identity", 0},
		{http.Header{"X-Engage-Identity": {"a"}}, "X-Engage-Identity", 1},
		{http.Header{"X-Engage-Identity": {"a"}, "X_engage_identity": {"b", "c"}}, "x-engage-identity", 3},
		{http.Header{"X-Engage-Identityx": {"a"}}, "X-Engage-Identity", 0},
		{http.Header{"X-App-Id": {"a"}, "X_APP_ID": {"b"}}, "X-App-Id", 2},
	}
	for _, tt := range tests {
		if got := CountHeader(tt.header, tt.name); got != tt.want {
			t.Errorf("CountHeader(%v, %q) = %d; want %d", tt.header, tt.name, got, tt.want)
		}
	}
}

func TestRoleLabel(t *testing.T) {
	t.Parallel()
	for role, want := range map[string]string{
		"agent": "Agent", "supervisor": "Supervisor", "account_holder": "Account holder",
		"": "Unknown role", "admin": "Unknown role",
	} {
		if got := RoleLabel(role); got != want {
			t.Errorf("RoleLabel(%q) = %q; want %q", role, got, want)
		}
	}
}

func TestAPIMe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.serve(http.MethodGet, "/api/me", map[string][]string{"X-Engage-Identity": {f.token(t, engageauth.RoleSupervisor)}})
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/me status = %d; want 200; body %q", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q; want JSON", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("GET /api/me body %q: %v", rec.Body, err)
	}
	want := map[string]any{
		"user_id": "user-42", "email": "ada@example.com", "name": "Ada <Lovelace>",
		"given_name": "Ada", "family_name": "Lovelace", "role": "supervisor",
		"company": "acme", "provider": "acme-azure", "oid": "object-1", "tid": "tenant-1",
		"sid": "sess-1", "issued_at": "2030-01-02T03:04:05Z", "expires_at": "2030-01-02T03:09:05Z",
	}
	if len(got) != len(want) {
		t.Errorf("GET /api/me = %v; want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("GET /api/me [%q] = %v; want %v", k, got[k], w)
		}
	}
	if rec := f.serve(http.MethodPost, "/api/me", map[string][]string{"X-Engage-Identity": {f.token(t, engageauth.RoleAgent)}}); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/me status = %d; want 405", rec.Code)
	}
}
