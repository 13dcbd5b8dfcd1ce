package caddymodule

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestSafeReturnPath(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("a", 2047)
	tests := []struct {
		in, want string
	}{
		// Local paths are kept as they are.
		{"/", "/"},
		{"/reports?week=12&q=a%20b", "/reports?week=12&q=a%20b"},
		{"/a/b#section", "/a/b#section"},
		{"/@evil.example", "/@evil.example"},
		{"/ssox", "/ssox"},
		{"/SSO/login", "/SSO/login"}, // paths are case-sensitive: this is the app's
		// Percent-encoded slashes and backslashes are one path segment on
		// this host: browsers resolve the Location without decoding them.
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"},
		{"/%5Cevil.example", "/%5Cevil.example"},
		{long, long},

		// Anything that could leave the site.
		{"", ""},
		{"reports", ""},
		{"//evil.example", ""},
		{"///evil.example", ""},
		{"//evil.example/path?x=1", ""},
		{`/\evil.example`, ""},
		{`/a\b`, ""},
		{"https://evil.example/", ""},
		{"http:/evil.example", ""},
		{"javascript:alert(1)", ""},
		{" /reports", ""},

		// Control characters (header splitting, browsers dropping tabs).
		{"/\t/evil.example", ""},
		{"/\r\nSet-Cookie: a=b", ""},
		{"/a\x00", ""},
		{"/a\x7f", ""},

		// The sign-in endpoints themselves, however spelt.
		{"/sso", ""},
		{"/sso/", ""},
		{"/sso/login", ""},
		{"/sso/logout?x=1", ""},
		{"/sso/saml/contoso/acs", ""},
		{"/sso%2Flogin", ""},
		{"/a/../sso/logout", ""},
		{"/%2e%2e/sso/logout", ""},
		{"/./sso/login", ""},

		{long + "a", ""}, // over 2048 bytes
	}
	for _, tt := range tests {
		if got := safeReturnPath(tt.in); got != tt.want {
			t.Errorf("safeReturnPath(%.40q) = %.40q; want %.40q", tt.in, got, tt.want)
		}
	}
}

func TestIsIdentityHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, configured string
		want             bool
	}{
		{"X-Engage-Identity", "X-Engage-Identity", true},
		{"x-engage-identity", "X-Engage-Identity", true},
		{"X_Engage_Identity", "X-Engage-Identity", true},
		{"X-ENGAGE_IDENTITY", "X-Engage-Identity", true},
		{"X-Engage-Role", "X-Engage-Identity", true},
		{"x_engage_anything", "X-Engage-Identity", true},
		{"X-Engage-", "X-Engage-Identity", true},
		{"X-Auth-Identity", "X-Auth-Identity", true},
		{"x_auth_identity", "X-Auth-Identity", true},
		{"X-Engage-Role", "X-Auth-Identity", true}, // the prefix is always ours
		{"X-Auth-Identity", "X-Engage-Identity", false},
		{"X-Auth-Identities", "X-Auth-Identity", false},
		{"X-Auth-Identit", "X-Auth-Identity", false},
		{"X-Engage", "X-Engage-Identity", false},
		{"X-Engaged-User", "X-Engage-Identity", false},
		{"XEngage-Identity", "X-Engage-Identity", false},
		{"Authorization", "X-Engage-Identity", false},
		{"Cookie", "X-Engage-Identity", false},
	}
	for _, tt := range tests {
		if got := isIdentityHeader(tt.name, tt.configured); got != tt.want {
			t.Errorf("isIdentityHeader(%q, %q) = %v; want %v", tt.name, tt.configured, got, tt.want)
		}
	}
}

func TestNormHeaderEqual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"a-b", "a-b", true},
		{"A-B", "a-b", true},
		{"a_b", "A-B", true},
		{"a-b", "a_b", true},
		{"a_b", "a_b", true},
		{"ab", "abc", false},
		{"a.b", "a-b", false},
		{"a b", "a-b", false},
		{"[", "{", false}, // '[' is 'Z'+1: not folded
		{"@", "`", false}, // '@' is 'A'-1: not folded
		{"É", "é", false}, // only ASCII folds
	}
	for _, tt := range tests {
		if got := normHeaderEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("normHeaderEqual(%q, %q) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	t.Parallel()
	const base = "https://engage.example.com"
	tests := []struct {
		name    string
		baseURL string
		mod     func(cs []*Company) []*Company
		want    []string // substrings of the error; none means valid
	}{
		{"valid", base, nil, nil},
		{"valid, trailing slash", base + "/", nil, nil},
		{"valid, metadata_url", base, func(cs []*Company) []*Company {
			p := cs[0].Providers[0]
			p.MetadataFile, p.MetadataURL = "", "https://login.example/md.xml"
			p.MetadataRefresh = caddy.Duration(time.Hour)
			return cs
		}, nil},
		{"nothing configured", "", func([]*Company) []*Company { return nil }, nil},

		{"no base_url", "", nil, []string{"base_url: required"}},
		{"base_url without scheme", "engage.example.com", nil, []string{"base_url: "}},
		{"base_url with path", base + "/app", nil, []string{"base_url: ", "scheme and host only"}},
		{"base_url with query", base + "?x=1", nil, []string{"base_url: "}},
		{"base_url with user", "https://u@engage.example.com", nil, []string{"base_url: "}},
		{"base_url ftp", "ftp://engage.example.com", nil, []string{"base_url: "}},
		{"base_url plain http", "http://engage.example.com", nil, []string{"base_url: ", "must use https"}},
		{"valid, http on loopback", "http://localhost:8080", nil, nil},
		{"valid, http on 127.0.0.1", "http://127.0.0.1:8080", nil, nil},

		{"nil company", base, func(cs []*Company) []*Company { return append(cs, nil) }, []string{"companies[2]: empty company"}},
		{"bad company id", base, func(cs []*Company) []*Company { cs[0].ID = "Contoso Ltd"; return cs },
			[]string{`companies[0].id: invalid company id "Contoso Ltd"`}},
		{"duplicate company id", base, func(cs []*Company) []*Company { cs[1].ID = "contoso"; return cs },
			[]string{`companies[1].id: company "contoso" is also defined at companies[0]`}},
		{"no domains", base, func(cs []*Company) []*Company { cs[0].Domains = nil; return cs },
			[]string{`companies[0].domains: company "contoso" has no authorised domain`}},
		{"bad domain", base, func(cs []*Company) []*Company { cs[1].Domains = []string{"fabrikam"}; return cs },
			[]string{`companies[1].domains[0]: invalid authorised domain "fabrikam"`}},
		{"duplicate domain across companies", base, func(cs []*Company) []*Company {
			cs[1].Domains = append(cs[1].Domains, " Contoso.EXAMPLE")
			return cs
		}, []string{`companies[1].domains[1]: domain " Contoso.EXAMPLE" is already authorised at companies[0].domains[0]`}},
		{"duplicate wildcard domain", base, func(cs []*Company) []*Company {
			cs[1].Domains = append(cs[1].Domains, "*.Branch.contoso.example")
			return cs
		}, []string{`companies[1].domains[1]: `, "already authorised at companies[0].domains[1]"}},

		{"no providers", base, func(cs []*Company) []*Company { cs[1].Providers = nil; return cs },
			[]string{`companies[1].providers: company "fabrikam" has no provider`}},
		{"nil provider", base, func(cs []*Company) []*Company { cs[1].Providers[1] = nil; return cs },
			[]string{"companies[1].providers[1]: empty provider"}},
		{"bad label", base, func(cs []*Company) []*Company { cs[0].Providers[0].Label = "Contoso_EU"; return cs },
			[]string{`companies[0].providers[0].label: invalid label "Contoso_EU"`}},
		{"one-letter label", base, func(cs []*Company) []*Company { cs[0].Providers[0].Label = "c"; return cs },
			[]string{`companies[0].providers[0].label: invalid label "c"`}},
		{"duplicate label across companies", base, func(cs []*Company) []*Company {
			cs[1].Providers[1].Label = "contoso"
			return cs
		}, []string{`companies[1].providers[1].label: label "contoso" is already used at companies[0].providers[0]`}},
		{"duplicate label in a company", base, func(cs []*Company) []*Company {
			cs[1].Providers[1].Label = "fabrikam-a"
			return cs
		}, []string{`companies[1].providers[1].label: label "fabrikam-a" is already used at companies[1].providers[0]`}},

		{"both metadata", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].MetadataURL = "https://login.example/md.xml"
			return cs
		}, []string{"companies[0].providers[0] (contoso): metadata: set only one of metadata_file and metadata_url"}},
		{"neither metadata", base, func(cs []*Company) []*Company { cs[0].Providers[0].MetadataFile = ""; return cs },
			[]string{"companies[0].providers[0] (contoso): metadata: set metadata_file or metadata_url"}},
		{"metadata_url not http", base, func(cs []*Company) []*Company {
			p := cs[0].Providers[0]
			p.MetadataFile, p.MetadataURL = "", "file:///etc/passwd"
			return cs
		}, []string{"companies[0].providers[0] (contoso): metadata_url: "}},
		{"metadata_url plain http", base, func(cs []*Company) []*Company {
			p := cs[0].Providers[0]
			p.MetadataFile, p.MetadataURL = "", "http://login.example/md.xml"
			return cs
		}, []string{"companies[0].providers[0] (contoso): metadata_url: ", "must use https"}},
		{"metadata_refresh too short", base, func(cs []*Company) []*Company {
			p := cs[0].Providers[0]
			p.MetadataFile, p.MetadataURL = "", "https://login.example/md.xml"
			p.MetadataRefresh = caddy.Duration(30 * time.Second)
			return cs
		}, []string{"companies[0].providers[0] (contoso): metadata_refresh: "}},
		{"entity_id not absolute", base, func(cs []*Company) []*Company { cs[0].Providers[0].EntityID = "contoso"; return cs },
			[]string{"companies[0].providers[0] (contoso): entity_id: "}},
		{"bad role", base, func(cs []*Company) []*Company { cs[0].Providers[0].Roles["admin"] = []string{"x"}; return cs },
			[]string{`companies[0].providers[0] (contoso): roles: unknown role "admin"`}},
		{"no roles", base, func(cs []*Company) []*Company { cs[1].Providers[0].Roles = nil; return cs },
			[]string{"companies[1].providers[0] (fabrikam-a): roles: "}},
		{"role with no IDs", base, func(cs []*Company) []*Company {
			cs[1].Providers[0].Roles = map[string][]string{"agent": {" | "}}
			return cs
		}, []string{"companies[1].providers[0] (fabrikam-a): roles: "}},
		{"bad mapping_mode", base, func(cs []*Company) []*Company { cs[0].Providers[0].MappingMode = "claims"; return cs },
			[]string{`companies[0].providers[0] (contoso): mapping_mode: unknown mapping mode "claims"`}},
		{"default_path not local", base, func(cs []*Company) []*Company { cs[0].Providers[0].DefaultPath = "//evil.example"; return cs },
			[]string{`companies[0].providers[0] (contoso): default_path: "//evil.example"`}},
		{"default_path relative", base, func(cs []*Company) []*Company { cs[0].Providers[0].DefaultPath = "home"; return cs },
			[]string{"companies[0].providers[0] (contoso): default_path: "}},
		{"entity_id shared", base, func(cs []*Company) []*Company {
			cs[1].Providers[0].EntityID = base + "/sso/saml/contoso"
			return cs
		}, []string{`companies[1].providers[0].entity_id: "https://engage.example.com/sso/saml/contoso" is also the entity ID of companies[0].providers[0]`}},
		{"explicit entity_ids shared", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].EntityID, cs[1].Providers[1].EntityID = "spn:1234", "spn:1234"
			return cs
		}, []string{`companies[1].providers[1].entity_id: "spn:1234" is also the entity ID of companies[0].providers[0]`}},
		{"clock_skew too large", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].ClockSkew = caddy.Duration(2 * time.Hour)
			return cs
		},
			[]string{"(contoso): clock_skew: 2h0m0s is out of range"}},
		{"bad encryption", base, func(cs []*Company) []*Company { cs[0].Providers[0].Encryption = "on"; return cs },
			[]string{`(contoso): encryption: "on" is not an encryption mode`}},
		{"sp_certificate without key", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].Encryption, cs[0].Providers[0].SPCertFile = "required", "sp.crt"
			return cs
		}, []string{"(contoso): sp_certificate: give both"}},
		{"sp_certificate unused", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].SPCertFile, cs[0].Providers[0].SPKeyFile = "sp.crt", "sp.key"
			return cs
		}, []string{"(contoso): sp_certificate: the certificate is used only with"}},
		{"sp_previous_key without sp_certificate", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].Encryption, cs[0].Providers[0].SPPreviousKeyFiles = "required", []string{"old.key"}
			return cs
		}, []string{"(contoso): sp_previous_key: previous keys go with an sp_certificate"}},
		{"max_response_size too small", base, func(cs []*Company) []*Company { cs[0].Providers[0].MaxResponseSize = 1000; return cs },
			[]string{"(contoso): max_response_size: 1000 bytes is out of range"}},
		{"graph without secret", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].Graph = &GraphConfig{TenantID: "t", ClientID: "c"}
			return cs
		}, []string{"(contoso): graph: tenant_id, client_id and client_secret are all required", "environment variable"}},
		{"graph with roles mapping", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].Graph = &GraphConfig{TenantID: "t", ClientID: "c", ClientSecret: "s"}
			cs[0].Providers[0].MappingMode = "roles"
			return cs
		}, []string{"(contoso): graph: resolves group overage, which only matters with mapping groups"}},
		{"valid SAML options", base, func(cs []*Company) []*Company {
			p := cs[0].Providers[0]
			p.ClockSkew, p.Encryption, p.SignRequests, p.MaxResponseSize = caddy.Duration(10*time.Minute), "allowed", true, 1<<20
			p.SPCertFile, p.SPKeyFile = "sp.crt", "sp.key"
			p.Graph = &GraphConfig{TenantID: "t", ClientID: "c", ClientSecret: "s"}
			return cs
		}, nil},

		{"every fault is reported", base, func(cs []*Company) []*Company {
			cs[0].Providers[0].Label = "BAD"
			cs[1].Domains = []string{"contoso.example"}
			cs[1].Providers[1].DefaultPath = "x"
			return cs
		}, []string{"companies[0].providers[0].label: ", "companies[1].domains[0]: ", "companies[1].providers[1] (fabrikam-b): default_path: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := testCompanies("/etc/engage/idp.xml")
			if tt.mod != nil {
				cs = tt.mod(cs)
			}
			err := validateConfig(tt.baseURL, cs)
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("validateConfig() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validateConfig() = nil; want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("validateConfig() = %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestCompanyForEmail(t *testing.T) {
	t.Parallel()
	// Contoso EU has an Azure tenant of its own: a tenant belongs to one
	// company.
	euMetadata := filepath.Join(t.TempDir(), "eu.xml")
	if err := os.WriteFile(euMetadata, testIdPFor(t, "0e7d2c11-6a4b-4f3e-8d2c-1b0a9f8e7d6c").Metadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envConfig{companies: func(md string) []*Company {
		cs := testCompanies(md)
		// An exact domain under another company's wildcard.
		return append(cs, &Company{
			ID: "contoso-eu", Domains: []string{"EU.Branch.Contoso.Example"},
			Providers: []*Provider{{Label: "contoso-eu", MetadataFile: euMetadata, Roles: map[string][]string{"agent": {groupAgent}}}},
		})
	}})
	tests := []struct {
		email, want string // want "" for no company
	}{
		{"alice@contoso.example", "contoso"},
		{"ALICE@Contoso.EXAMPLE", "contoso"},
		{"bob@fabrikam.example", "fabrikam"},
		{"a@x.branch.contoso.example", "contoso"},
		{"a@deep.x.BRANCH.contoso.example", "contoso"},
		{"a@eu.branch.contoso.example", "contoso-eu"}, // exact beats wildcard
		{"a@Eu.Branch.Contoso.example", "contoso-eu"},
		{"a@x.eu.branch.contoso.example", "contoso"}, // exact does not cover subdomains
		{"a@branch.contoso.example", ""},             // a wildcard does not cover its parent
		{"a@sub.contoso.example", ""},                // exact does not cover subdomains
		{"a@xbranch.contoso.example", ""},
		{"a@contoso.example.evil", ""},
		{"a@evilcontoso.example", ""},
		{"a@", ""},
		{"contoso.example", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got := ""
		if c := e.app.companyForEmail(tt.email); c != nil {
			got = c.ID
		}
		if got != tt.want {
			t.Errorf("companyForEmail(%q) = %q; want %q", tt.email, got, tt.want)
		}
	}
}

func TestTokenCache(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := t0.Add(5 * time.Minute)

	t.Run("margin", func(t *testing.T) {
		c := newTokenCache(10)
		if _, ok := c.get("s1", t0, time.Minute); ok {
			t.Error("get() on an empty cache = hit")
		}
		c.put("s1", "jwt1", exp, t0)
		tests := []struct {
			now  time.Time
			want bool
		}{
			{t0, true},
			{exp.Add(-time.Minute), true}, // exactly the margin left
			{exp.Add(-time.Minute + time.Nanosecond), false},
			{exp, false},
			{exp.Add(time.Hour), false},
		}
		for _, tt := range tests {
			jwt, ok := c.get("s1", tt.now, time.Minute)
			if ok != tt.want || (ok && jwt != "jwt1") {
				t.Errorf("get(s1, exp%+v, 1m) = %q, %v; want hit %v", tt.now.Sub(exp), jwt, ok, tt.want)
			}
		}
		c.drop("s1")
		if _, ok := c.get("s1", t0, 0); ok {
			t.Error("get() after drop() = hit")
		}
	})

	// has reports which sessions are cached at t0.
	has := func(c *tokenCache, sids ...string) []bool {
		var out []bool
		for _, s := range sids {
			_, ok := c.get(s, t0, 0)
			out = append(out, ok)
		}
		return out
	}
	t.Run("full of live tokens: cleared", func(t *testing.T) {
		c := newTokenCache(2)
		c.put("a", "A", exp, t0)
		c.put("b", "B", exp, t0)
		c.put("c", "C", exp, t0)
		if got := has(c, "a", "b", "c"); got[0] || got[1] || !got[2] {
			t.Errorf("after a third put in a cache of 2: cached a, b, c = %v; want only c", got)
		}
		if len(c.m) > c.max {
			t.Errorf("cache holds %d; want at most %d", len(c.m), c.max)
		}
	})
	t.Run("expired dropped first", func(t *testing.T) {
		c := newTokenCache(2)
		c.put("old", "OLD", t0, t0.Add(-5*time.Minute)) // expires at t0
		c.put("b", "B", exp, t0)
		c.put("c", "C", exp, t0)
		if got := has(c, "b", "c"); !got[0] || !got[1] {
			t.Errorf("cached b, c = %v; want both: only the expired entry makes room", got)
		}
		if _, ok := c.m["old"]; ok {
			t.Error("the expired entry is still in the cache")
		}
	})
	t.Run("replacing an entry evicts nothing", func(t *testing.T) {
		c := newTokenCache(2)
		c.put("a", "A", exp, t0)
		c.put("b", "B", exp, t0)
		c.put("a", "A2", exp, t0)
		if got := has(c, "a", "b"); !got[0] || !got[1] {
			t.Errorf("cached a, b = %v; want both", got)
		}
		if jwt, _ := c.get("a", t0, 0); jwt != "A2" {
			t.Errorf("get(a) = %q; want the replacement A2", jwt)
		}
	})
}

func TestRenewEvery(t *testing.T) {
	t.Parallel()
	tests := []struct{ idle, want time.Duration }{
		{2 * time.Hour, time.Minute},
		{10 * time.Minute, time.Minute},
		{5 * time.Minute, 30 * time.Second},
		{time.Minute, 6 * time.Second},
	}
	for _, tt := range tests {
		if got := renewEvery(tt.idle); got != tt.want {
			t.Errorf("renewEvery(%v) = %v; want %v", tt.idle, got, tt.want)
		}
	}
}

// TestAppProvisionJSONErrors checks that configs written as Caddy JSON are
// refused at Provision, before any I/O they would need, with the JSON path
// of the fault.
func TestAppProvisionJSONErrors(t *testing.T) {
	t.Parallel()
	const company = `{"id":"contoso","domains":["contoso.example"],"providers":[{"label":"contoso","metadata_file":"/nonexistent/idp.xml","roles":{"agent":["g1"]}}]}`
	tests := []struct {
		name, json, want string
	}{
		{"duplicate label",
			`{"base_url":"https://e.example","companies":[` + company + `,{"id":"other","domains":["other.example"],"providers":[{"label":"contoso","metadata_file":"x.xml","roles":{"agent":["g1"]}}]}]}`,
			`companies[1].providers[0].label: label "contoso" is already used at companies[0].providers[0]`},
		{"idle timeout", `{"base_url":"https://e.example","session":{"idle_timeout":"30s"},"companies":[` + company + `]}`,
			"session.idle_timeout: 30s is too short"},
		{"lifetime", `{"base_url":"https://e.example","session":{"idle_timeout":"3h","lifetime":"2h"},"companies":[` + company + `]}`,
			"session.lifetime (2h0m0s) must not be shorter than session.idle_timeout (3h0m0s)"},
		{"login timeout", `{"base_url":"https://e.example","session":{"login_timeout":"2h"},"companies":[` + company + `]}`,
			"session.login_timeout: 2h0m0s must be between 1m and 1h"},
		{"cookie name", `{"base_url":"https://e.example","session":{"cookie_name":"a b"},"companies":[` + company + `]}`,
			`session.cookie_name: "a b" is not a valid cookie name`},
		{"token ttl", `{"base_url":"https://e.example","token":{"ttl":"10s"},"companies":[` + company + `]}`,
			"token.ttl: 10s must be between 30s and 1h"},
		{"metadata file missing", `{"base_url":"https://e.example","companies":[` + company + `]}`,
			`company "contoso", provider "contoso": metadata_file: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a App
			if err := json.Unmarshal([]byte(tt.json), &a); err != nil {
				t.Fatalf("json.Unmarshal() = %v", err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := a.Provision(ctx)
			if err == nil {
				_ = a.Cleanup()
				t.Fatalf("Provision() = nil; want an error with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Provision() = %q; want it to contain %q", err, tt.want)
			}
		})
	}
}
