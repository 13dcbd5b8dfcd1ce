package graph

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNew checks the validation of a Config and the URLs derived from it.
func TestNew(t *testing.T) {
	t.Parallel()
	valid := func(mod func(*Config)) Config {
		c := Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	tests := []struct {
		name      string
		cfg       Config
		wantErr   string // "" for success
		wantToken string // token URL on success
		wantScope string
	}{
		{"defaults", valid(nil), "",
			"https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token", "https://graph.microsoft.com/.default"},
		{"domain tenant and trailing slashes", valid(func(c *Config) {
			c.TenantID = "contoso.onmicrosoft.com"
			c.LoginURL = "https://login.microsoftonline.us/"
			c.GraphURL = "https://graph.microsoft.us/"
		}), "", "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token", "https://graph.microsoft.us/.default"},
		{"http localhost", valid(func(c *Config) { c.LoginURL = "http://localhost:8080"; c.GraphURL = "http://127.0.0.5:9" }), "",
			"http://localhost:8080/" + tenant + "/oauth2/v2.0/token", "http://127.0.0.5:9/.default"},
		{"http ::1", valid(func(c *Config) { c.GraphURL = "http://[::1]:9/base" }), "",
			"https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token", "http://[::1]:9/base/.default"},
		{"no tenant", valid(func(c *Config) { c.TenantID = "" }), "tenant id must be set", "", ""},
		{"common tenant", valid(func(c *Config) { c.TenantID = "Common" }), "is not a tenant", "", ""},
		{"organizations tenant", valid(func(c *Config) { c.TenantID = "organizations" }), "is not a tenant", "", ""},
		{"tenant with a slash", valid(func(c *Config) { c.TenantID = tenant + "/x" }), "GUID or a domain", "", ""},
		{"tenant with dots", valid(func(c *Config) { c.TenantID = ".." }), "GUID or a domain", "", ""},
		{"tenant too long", valid(func(c *Config) { c.TenantID = strings.Repeat("a", 254) }), "longer than 253", "", ""},
		{"no client id", valid(func(c *Config) { c.ClientID = " " }), "client id", "", ""},
		{"client id with newline", valid(func(c *Config) { c.ClientID = "a\nb" }), "client id", "", ""},
		{"no secret", valid(func(c *Config) { c.ClientSecret = "" }), "client secret must be set", "", ""},
		{"http elsewhere", valid(func(c *Config) { c.GraphURL = "http://graph.microsoft.com" }), "must use https", "", ""},
		{"http login elsewhere", valid(func(c *Config) { c.LoginURL = "http://10.0.0.1" }), "must use https", "", ""},
		{"other scheme", valid(func(c *Config) { c.GraphURL = "ftp://graph.microsoft.com" }), "absolute http(s)", "", ""},
		{"relative", valid(func(c *Config) { c.GraphURL = "/graph" }), "absolute http(s)", "", ""},
		{"no host", valid(func(c *Config) { c.LoginURL = "https://" }), "has no host", "", ""},
		{"query", valid(func(c *Config) { c.GraphURL = "https://graph.microsoft.com?x=1" }), "query or fragment", "", ""},
		{"empty query", valid(func(c *Config) { c.GraphURL = "https://graph.microsoft.com/?" }), "query or fragment", "", ""},
		{"fragment", valid(func(c *Config) { c.LoginURL = "https://login.microsoftonline.com/#x" }), "query or fragment", "", ""},
		{"user info", valid(func(c *Config) { c.GraphURL = "https://u:p@graph.microsoft.com" }), "user information", "", ""},
		{"negative timeout", valid(func(c *Config) { c.Timeout = -time.Second }), "negative", "", ""},
		{"negative max groups", valid(func(c *Config) { c.MaxGroups = -1 }), "negative", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New = %v, want ErrInvalid with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if c.tokenURL != tt.wantToken || c.scope != tt.wantScope {
				t.Errorf("token URL %q, scope %q; want %q, %q", c.tokenURL, c.scope, tt.wantToken, tt.wantScope)
			}
			if c.timeout != DefaultTimeout || c.maxGroups != DefaultMaxGroups || c.maxPages != DefaultMaxGroups/100+10 {
				t.Errorf("defaults: timeout %v, max groups %d, max pages %d", c.timeout, c.maxGroups, c.maxPages)
			}
			if c.hc == nil || c.hc.CheckRedirect == nil {
				t.Error("client follows redirects")
			}
		})
	}
}

// TestNewKeepsCallersClient checks that New does not change the caller's
// http.Client when it disables redirects.
func TestNewKeepsCallersClient(t *testing.T) {
	t.Parallel()
	hc := &http.Client{Timeout: 3 * time.Second}
	c, err := New(Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("caller's client was changed")
	}
	if c.hc == hc || c.hc.Timeout != 3*time.Second || c.hc.CheckRedirect == nil {
		t.Errorf("client copy: same %v, timeout %v, redirects checked %v", c.hc == hc, c.hc.Timeout, c.hc.CheckRedirect != nil)
	}
}

// TestConfigString checks that printing a Config never shows the secret.
func TestConfigString(t *testing.T) {
	t.Parallel()
	cfg := Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{cfg, &cfg} {
			got := fmt.Sprintf(format, v)
			if strings.Contains(got, secret) || !strings.Contains(got, clientID) || !strings.Contains(got, "REDACTED") {
				t.Errorf("Sprintf(%q, %T) = %q", format, v, got)
			}
		}
	}
}

// TestErrorText checks the layout of Error and what it unwraps to.
func TestErrorText(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{Step: StepGroups, Kind: ErrForbidden, Status: 403, Code: "Authorization_RequestDenied", Message: "Insufficient privileges to complete the operation.", RequestID: "r", CorrelationID: "c"},
			`graph: groups: permission denied (grant the application GroupMember.Read.All or User.Read.All as an application permission, with admin consent): HTTP 403: Authorization_RequestDenied: "Insufficient privileges to complete the operation." (request-id "r", correlation-id "c")`},
		{&Error{Step: StepToken, Kind: ErrUnavailable, Err: cause}, "graph: token: unavailable: boom"},
		{&Error{Step: StepToken}, "graph: token"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
		}
	}
	e := &Error{Step: StepToken, Kind: ErrUnavailable, Err: cause}
	if !errors.Is(e, ErrUnavailable) || !errors.Is(e, cause) || errors.Is(e, ErrProtocol) {
		t.Error("Unwrap does not give exactly Kind and Err")
	}
}
