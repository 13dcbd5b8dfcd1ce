package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/engage-sso/engage-sso/caddymodule/identity"
	"github.com/engage-sso/engage-sso/caddymodule/token"
)

// fakeHook answers user lookups with users (possibly none) and create with
// createStatus; every other call fails with failStatus when set.
func fakeHook(t *testing.T, users []map[string]any, createStatus, failStatus int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			t.Errorf("hook call without a bearer token: %s %s", r.Method, r.URL)
		}
		w.Header().Set("Content-Type", "application/json")
		if failStatus != 0 {
			w.WriteHeader(failStatus)
			_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"down"}}`))
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/users":
			_ = json.NewEncoder(w).Encode(map[string]any{"users": users})
		case r.Method == http.MethodPost && r.URL.Path == "/users":
			w.WriteHeader(createStatus)
			if createStatus == http.StatusCreated {
				_, _ = w.Write([]byte(`{"id":"new-1","email":"a@contoso.com","role":"agent","active":true,"company":"contoso"}`))
			} else {
				_, _ = w.Write([]byte(`{"error":{"code":"invalid","message":"no"}}`))
			}
		case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/users/"):
			_, _ = w.Write([]byte(`{"id":"` + strings.TrimPrefix(r.URL.Path, "/users/") + `","email":"a@contoso.com","role":"agent","active":true,"company":"contoso","external_id":"oid-1","provider":"contoso"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no"}}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestResolveUserMapsHookAnswers(t *testing.T) {
	active := map[string]any{"id": "u-7", "email": "a@contoso.com", "role": "agent", "active": true,
		"company": "contoso", "external_id": "oid-1", "provider": "contoso"}
	inactive := map[string]any{"id": "u-8", "email": "a@contoso.com", "role": "agent", "active": false,
		"company": "contoso", "external_id": "oid-1", "provider": "contoso"}
	off := false
	tests := []struct {
		name       string
		users      []map[string]any
		create     int
		fail       int
		jitOff     bool
		wantID     string
		wantReason string
		wantStatus int
	}{
		{name: "existing active user", users: []map[string]any{active}, wantID: "u-7"},
		{name: "JIT creates", create: http.StatusCreated, wantID: "new-1"},
		{name: "JIT off, no account", jitOff: true, wantReason: "no_account", wantStatus: http.StatusForbidden},
		{name: "deactivated", users: []map[string]any{inactive}, wantReason: "account_disabled", wantStatus: http.StatusForbidden},
		{name: "create refused", create: http.StatusUnprocessableEntity, wantReason: "account_setup_failed", wantStatus: http.StatusForbidden},
		{name: "hook down", fail: http.StatusInternalServerError, wantReason: "directory_unavailable", wantStatus: http.StatusServiceUnavailable},
		{name: "hook refuses our token", fail: http.StatusUnauthorized, wantReason: "directory_unavailable", wantStatus: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeHook(t, tt.users, tt.create, tt.fail)
			key, err := token.GenerateKey(nil, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			prov := &Provider{Label: "contoso"}
			if tt.jitOff {
				prov.JIT = &off
			}
			c := &Company{ID: "contoso", Domains: []string{"contoso.com"}, Providers: []*Provider{prov}}
			a := &App{
				UserHook:  &UserHook{URL: srv.URL, MaxAttempts: 1},
				Companies: []*Company{c},
				minter:    &token.Minter{Keys: token.NewKeySet(key)},
			}
			a.setDefaults()
			if err := a.setupDirectories(nil); err != nil {
				t.Fatal(err)
			}
			h := &Handler{app: a}
			id := identity.Identity{Email: "a@contoso.com", Role: identity.RoleAgent, Company: "contoso", Provider: "contoso", ObjectID: "oid-1"}
			reason, status, err := h.resolveUser(context.Background(), &provider{cfg: prov, company: c}, &id)
			if tt.wantReason == "" {
				if err != nil || id.UserID != tt.wantID {
					t.Errorf("resolveUser() = %q, %d, %v, user %q; want user %q", reason, status, err, id.UserID, tt.wantID)
				}
				return
			}
			if err == nil || reason != tt.wantReason || status != tt.wantStatus {
				t.Errorf("resolveUser() = %q, %d, %v; want %q, %d", reason, status, err, tt.wantReason, tt.wantStatus)
			}
			if id.UserID != "" {
				t.Errorf("refused sign-in still got user id %q", id.UserID)
			}
		})
	}
}

func TestResolveUserWithoutHookUsesObjectID(t *testing.T) {
	c := &Company{ID: "contoso"}
	h := &Handler{app: &App{Companies: []*Company{c}}}
	if err := h.app.setupDirectories(nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ oid, email, want string }{
		{"oid-1", "a@contoso.com", "oid-1"},
		{"", "a@contoso.com", "a@contoso.com"},
	} {
		id := identity.Identity{ObjectID: tt.oid, Email: tt.email}
		if _, _, err := h.resolveUser(context.Background(), &provider{cfg: &Provider{}, company: c}, &id); err != nil || id.UserID != tt.want {
			t.Errorf("resolveUser(oid %q) = %v, user %q; want %q", tt.oid, err, id.UserID, tt.want)
		}
	}
}

func TestSetupDirectoriesRefusesSharedAudience(t *testing.T) {
	a := &App{UserHook: &UserHook{URL: "https://hook.example", Audience: "engage"}, Companies: []*Company{{ID: "c1"}}}
	a.setDefaults()
	if err := a.setupDirectories(nil); err == nil || !strings.Contains(err.Error(), "must differ from token.audience") {
		t.Errorf("setupDirectories(hook audience = token audience) = %v; want a refusal", err)
	}
}

func TestUserHookCaddyfile(t *testing.T) {
	in := optionHead + "\tuser_hook https://engage.internal/hook {\n\t\taudience engage-hook\n\t\ttimeout 2s\n\t\tmax_attempts 4\n\t}\n" +
		"\tcompany c1 {\n\t\tdomains c.com\n\t\tuser_hook https://other.internal/hook\n\t\tprovider p1 {\n\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t}\n\t}\n}"
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatalf("UnmarshalCaddyfile() = %v", err)
	}
	if a.UserHook == nil || a.UserHook.URL != "https://engage.internal/hook" || a.UserHook.Audience != "engage-hook" ||
		a.UserHook.Timeout != 2_000_000_000 || a.UserHook.MaxAttempts != 4 || a.Companies[0].UserHookURL != "https://other.internal/hook" {
		t.Errorf("parsed user hook = %+v, company hook %q", a.UserHook, a.Companies[0].UserHookURL)
	}
	for _, tt := range []struct{ in, want string }{
		{"engage_sso {\n\tuser_hook\n}", "user_hook: missing URL"},
		{"engage_sso {\n\tuser_hook http://hook.example.com\n}", "must use https"},
		{"engage_sso {\n\tuser_hook https://h.example {\n\t\tretries 3\n\t}\n}", `unknown user_hook setting "retries"`},
		{"engage_sso {\n\tuser_hook https://h.example {\n\t\tmax_attempts 50\n\t}\n}", "at most 10"},
		{optionHead + "\tcompany c1 {\n\t\tuser_hook ftp://x\n\t}\n}", "not an https URL"},
	} {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("UnmarshalCaddyfile(%q) = %v; want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestUserHookMutualTLS: with tls { ca_file cert_file key_file } the hook
// is reached over mutual TLS; without the client certificate the same hook
// refuses the connection and the sign-in fails closed.
func TestUserHookMutualTLS(t *testing.T) {
	dir := t.TempDir()
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "engage-sso"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &clientKey.PublicKey, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(clientKey)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile := write("client.pem", "CERTIFICATE", der)
	keyFile := write("client-key.pem", "PRIVATE KEY", keyDER)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case http.MethodGet:
			_, _ = w.Write([]byte(`{"users":[{"id":"u-tls","email":"a@contoso.com","role":"agent","active":true,"company":"contoso","external_id":"oid-1","provider":"contoso"}]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	pool := x509.NewCertPool()
	pool.AddCert(clientCert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := write("ca.pem", "CERTIFICATE", srv.Certificate().Raw)

	for _, tt := range []struct {
		name   string
		tls    *TLSFiles
		wantID string
	}{
		{"client certificate", &TLSFiles{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, "u-tls"},
		{"no client certificate", &TLSFiles{CAFile: caFile}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key, _ := token.GenerateKey(nil, time.Now())
			prov := &Provider{Label: "contoso"}
			c := &Company{ID: "contoso", Providers: []*Provider{prov}}
			a := &App{UserHook: &UserHook{URL: srv.URL, MaxAttempts: 1, TLS: tt.tls}, Companies: []*Company{c},
				minter: &token.Minter{Keys: token.NewKeySet(key)}}
			a.setDefaults()
			if err := a.setupDirectories(nil); err != nil {
				t.Fatal(err)
			}
			id := identity.Identity{Email: "a@contoso.com", Role: identity.RoleAgent, Company: "contoso", Provider: "contoso", ObjectID: "oid-1"}
			reason, _, err := (&Handler{app: a}).resolveUser(context.Background(), &provider{cfg: prov, company: c}, &id)
			if tt.wantID != "" && (err != nil || id.UserID != tt.wantID) {
				t.Errorf("resolveUser() = %v, user %q; want %q", err, id.UserID, tt.wantID)
			}
			if tt.wantID == "" && (err == nil || reason != "directory_unavailable") {
				t.Errorf("resolveUser() without a client certificate = %q, %v; want directory_unavailable", reason, err)
			}
		})
	}
}
