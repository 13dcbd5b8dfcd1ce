package demomodules

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestDemoAppCaddyfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		input   string
		want    DemoApp
		wantErr string
	}{
		{
			name: "all settings",
			input: `engage_demo_app {
				jwks_url http://localhost:8080/sso/.well-known/jwks.json
				issuer engage-sso
				audience engage
				hook_audience engage-hook
				data_file {env.HOME}/users.json
			}`,
			want: DemoApp{
				JWKSURL: "http://localhost:8080/sso/.well-known/jwks.json", Issuer: "engage-sso",
				Audience: "engage", HookAudience: "engage-hook", DataFile: "{env.HOME}/users.json",
			},
		},
		{name: "minimal", input: "engage_demo_app {\n jwks_url http://x/jwks\n}", want: DemoApp{JWKSURL: "http://x/jwks"}},
		{name: "no jwks_url", input: "engage_demo_app {\n data_file users.json\n}", wantErr: "jwks_url is required"},
		{name: "twice", input: "engage_demo_app {\n jwks_url http://x\n data_file a\n data_file b\n}", wantErr: "data_file set twice"},
		{name: "unknown", input: "engage_demo_app {\n jwks_url http://x\n users a\n}", wantErr: `unknown engage_demo_app setting "users"`},
		{name: "two values", input: "engage_demo_app {\n jwks_url http://x\n hook_audience a b\n}", wantErr: "wrong argument count"},
		{name: "argument", input: "engage_demo_app x", wantErr: "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got DemoApp
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("UnmarshalCaddyfile(%q) error = %v; want one mentioning %q", tt.input, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile(%q): %v", tt.input, err)
			}
			if got != tt.want {
				t.Errorf("UnmarshalCaddyfile(%q) = %+v; want %+v", tt.input, got, tt.want)
			}
		})
	}
}

// TestDemoAppProvision is not parallel: it sets an environment variable.
func TestDemoAppProvision(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()

	same := DemoApp{JWKSURL: "http://x/jwks", HookAudience: "engage"}
	if err := same.Provision(ctx); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("Provision with hook_audience = audience: %v; want an error", err)
	}
	bad := DemoApp{JWKSURL: "http://x/jwks", DataFile: t.TempDir()} // a directory
	if err := bad.Provision(ctx); err == nil || !strings.Contains(err.Error(), "reading users") {
		t.Errorf("Provision with a directory as data_file: %v; want an error", err)
	}

	dir := t.TempDir()
	t.Setenv("ENGAGE_DEMO_TEST_DIR", dir)
	m := DemoApp{JWKSURL: "http://x/jwks", DataFile: "{env.ENGAGE_DEMO_TEST_DIR}/users.json"}
	// A file of another version is refused: proof that the placeholder
	// was expanded and the file read.
	path := filepath.Join(dir, "users.json")
	if err := os.WriteFile(path, []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Provision(ctx); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("Provision with %s of version 99: %v; want an error", path, err)
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"users":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	// The hook is served, and refuses a request without a token.
	rec := httptest.NewRecorder()
	if err := m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hook/users?company=contoso", nil), nil); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"code":"unauthorized"`) {
		t.Errorf("GET /hook/users = %d %s; want the hook's 401", rec.Code, rec.Body)
	}
}
