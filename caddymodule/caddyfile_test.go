package caddymodule

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

const validGlobal = `engage_sso {
	base_url https://engage.example.com
	store memory
	session {
		cookie_name engage
		idle_timeout 30m
		lifetime 8h
		login_timeout 5m
	}
	token {
		issuer https://engage.example.com/sso
		audience engage-app
		ttl 2m
		signing_key_file /etc/engage/jwt.pem
	}
	company contoso {
		name Contoso Ltd
		domains contoso.com Contoso.CO.UK *.branch.contoso.com
		provider contoso {
			metadata_file /etc/engage/contoso.xml
			mapping groups
			agent aaaa-1|aaaa-2
			supervisor bbbb-1 bbbb-2
			account_holder cccc-1
			jit off
			idp_initiated off
			default_path /home
			entity_id urn:engage:contoso
		}
		provider contoso-eu {
			metadata_url https://login.microsoftonline.com/t/federationmetadata/2007-06/federationmetadata.xml?appid=x
			metadata_refresh 6h
			mapping roles
			account_holder Engage.AccountHolder
			claims {
				email http://example.com/mail
				groups http://example.com/memberof
			}
		}
	}
	company fabrikam {
		domains fabrikam.com
		provider fabrikam {
			metadata_file fabrikam.xml
			agent dddd
		}
	}
}`

func TestUnmarshalAppValid(t *testing.T) {
	d := caddyfile.NewTestDispenser(validGlobal)
	var a App
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatalf("UnmarshalCaddyfile() = %v", err)
	}
	off := false
	want := App{
		BaseURL:  "https://engage.example.com",
		StoreRaw: json.RawMessage(`{"backend":"memory"}`),
		Session: SessionConfig{
			CookieName:   "engage",
			IdleTimeout:  caddy.Duration(30 * time.Minute),
			Lifetime:     caddy.Duration(8 * time.Hour),
			LoginTimeout: caddy.Duration(5 * time.Minute),
		},
		Token: TokenConfig{
			Issuer:         "https://engage.example.com/sso",
			Audience:       "engage-app",
			TTL:            caddy.Duration(2 * time.Minute),
			SigningKeyFile: "/etc/engage/jwt.pem",
		},
		Companies: []*Company{
			{
				ID:      "contoso",
				Name:    "Contoso Ltd",
				Domains: []string{"contoso.com", "contoso.co.uk", "*.branch.contoso.com"},
				Providers: []*Provider{
					{
						Label:        "contoso",
						MetadataFile: "/etc/engage/contoso.xml",
						MappingMode:  "groups",
						Roles: map[string][]string{
							"agent":          {"aaaa-1", "aaaa-2"},
							"supervisor":     {"bbbb-1", "bbbb-2"},
							"account_holder": {"cccc-1"},
						},
						JIT:               &off,
						AllowIdPInitiated: &off,
						DefaultPath:       "/home",
						EntityID:          "urn:engage:contoso",
					},
					{
						Label:           "contoso-eu",
						MetadataURL:     "https://login.microsoftonline.com/t/federationmetadata/2007-06/federationmetadata.xml?appid=x",
						MetadataRefresh: caddy.Duration(6 * time.Hour),
						MappingMode:     "roles",
						Roles:           map[string][]string{"account_holder": {"Engage.AccountHolder"}},
					},
				},
			},
			{
				ID:      "fabrikam",
				Name:    "fabrikam",
				Domains: []string{"fabrikam.com"},
				Providers: []*Provider{{
					Label:        "fabrikam",
					MetadataFile: "fabrikam.xml",
					Roles:        map[string][]string{"agent": {"dddd"}},
				}},
			},
		},
	}
	want.Companies[0].Providers[1].Claims.Email = "http://example.com/mail"
	want.Companies[0].Providers[1].Claims.Groups = "http://example.com/memberof"
	gotJSON, _ := json.MarshalIndent(a, "", " ")
	wantJSON, _ := json.MarshalIndent(want, "", " ")
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("UnmarshalCaddyfile() =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	if err := validateConfig(a.BaseURL, a.Companies); err != nil {
		t.Errorf("validateConfig(parsed) = %v", err)
	}
}

// provider wraps provider settings into a complete global option.
func withProvider(body string) string {
	return "engage_sso {\n\tbase_url https://e.example\n\tcompany contoso {\n\t\tdomains contoso.com\n\t\tprovider contoso {\n" + body + "\n\t\t}\n\t}\n}"
}

func TestUnmarshalAppErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // substring of the error
		line  int    // expected line in the error (0: not checked)
	}{
		{"argument after option", "engage_sso extra {\n}", "wrong argument count", 1},
		{"unknown setting", "engage_sso {\n\tbase_ur https://x\n}", `unknown engage_sso setting "base_ur"`, 2},
		{"base_url twice", "engage_sso {\n\tbase_url https://a.example\n\tbase_url https://b.example\n}", "base_url is set twice (first on line 2)", 3},
		{"base_url with path", "engage_sso {\n\tbase_url https://a.example/app\n}", "scheme and host only", 2},
		{"base_url not http", "engage_sso {\n\tbase_url ftp://a.example\n}", "scheme and host only", 2},
		{"base_url missing value", "engage_sso {\n\tbase_url\n}", "base_url: missing value", 2},
		{"base_url two values", "engage_sso {\n\tbase_url https://a.example https://b.example\n}", "takes one value", 2},
		{"base_url required", "engage_sso {\n\tcompany c1 {\n\t\tdomains c.com\n\t\tprovider p1 {\n\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t}\n\t}\n}", "base_url is required", 0},
		{"unknown store", "engage_sso {\n\tstore nosuch\n}", `store "nosuch"`, 2},
		{"memory store bad setting", "engage_sso {\n\tstore memory {\n\t\tsize 3\n\t}\n}", "unknown memory store setting", 3},
		{"memory store bad number", "engage_sso {\n\tstore memory {\n\t\tmax_entries many\n\t}\n}", "positive whole number", 3},
		{"session unknown", "engage_sso {\n\tsession {\n\t\tidle 3m\n\t}\n}", `unknown session setting "idle"`, 3},
		{"session bad duration", "engage_sso {\n\tsession {\n\t\tidle_timeout soon\n\t}\n}", `invalid duration "soon"`, 3},
		{"session negative duration", "engage_sso {\n\tsession {\n\t\tlifetime -1h\n\t}\n}", "must be positive", 3},
		{"session bad cookie", "engage_sso {\n\tsession {\n\t\tcookie_name a;b\n\t}\n}", "not a valid cookie name", 3},
		{"session twice key", "engage_sso {\n\tsession {\n\t\tlifetime 1h\n\t\tlifetime 2h\n\t}\n}", "session.lifetime is set twice", 4},
		{"token unknown", "engage_sso {\n\ttoken {\n\t\talg RS256\n\t}\n}", `unknown token setting "alg"`, 3},
		{"company bad id", "engage_sso {\n\tcompany Contoso! {\n\t}\n}", `invalid id "Contoso!"`, 2},
		{"company missing id", "engage_sso {\n\tcompany {\n\t}\n}", "company: missing name", 2},
		{"company duplicate", optionHead + companyBlock("c1", "c.com", "p1") + companyBlock("c1", "d.com", "p2") + "}", `company "c1" is already defined on line 3`, 10},
		{"company no domains", "engage_sso {\n\tbase_url https://e.example\n\tcompany c1 {\n\t\tprovider p1 {\n\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t}\n\t}\n}", `company "c1" has no authorised domains`, 3},
		{"company no provider", "engage_sso {\n\tbase_url https://e.example\n\tcompany c1 {\n\t\tdomains c.com\n\t}\n}", `company "c1" has no provider`, 3},
		{"company unknown setting", "engage_sso {\n\tcompany c1 {\n\t\tdomain c.com\n\t}\n}", `unknown company setting "domain"`, 3},
		{"bad domain", "engage_sso {\n\tcompany c1 {\n\t\tdomains contoso\n\t}\n}", `invalid authorised domain "contoso"`, 3},
		{"domain in two companies", optionHead + companyBlock("c1", "c.com", "p1") + companyBlock("c2", "C.com", "p2") + "}", `domain "C.com" is already authorised on line 4`, 11},
		{"label upper case", "engage_sso {\n\tcompany c1 {\n\t\tdomains c.com\n\t\tprovider Contoso {\n\t\t}\n\t}\n}", `invalid label "Contoso"`, 4},
		{"label too short", "engage_sso {\n\tcompany c1 {\n\t\tdomains c.com\n\t\tprovider a {\n\t\t}\n\t}\n}", `invalid label "a"`, 4},
		{"label in two companies", optionHead + companyBlock("c1", "c.com", "p1") + companyBlock("c2", "d.com", "p1") + "}", `provider label "p1" is already used on line 5`, 12},
		{"missing metadata", withProvider("\t\t\tagent a"), `provider "contoso" has no IdP metadata`, 5},
		{"both metadata", withProvider("\t\t\tmetadata_file x\n\t\t\tmetadata_url https://x\n\t\t\tagent a"), "only one of metadata_file and metadata_url", 5},
		{"no role", withProvider("\t\t\tmetadata_file x"), "maps no role", 5},
		{"unknown role", withProvider("\t\t\tmetadata_file x\n\t\t\tadmin a"), `unknown provider setting "admin"`, 7},
		{"empty role ids", withProvider("\t\t\tmetadata_file x\n\t\t\tagent ||"), "give one or more group object IDs", 7},
		{"bad mapping", withProvider("\t\t\tmetadata_file x\n\t\t\tmapping group\n\t\t\tagent a"), `unknown mapping mode "group"`, 7},
		{"bad jit", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tjit maybe"), "want on or off", 8},
		{"bad default path", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tdefault_path https://evil.example/"), "must be a local path", 8},
		{"role twice", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tagent b"), "provider.agent is set twice", 8},
		{"unknown claim", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tclaims {\n\t\t\t\tmail x\n\t\t\t}"), `unknown claim "mail"`, 9},
		{"bad clock skew", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tclock_skew lots"), `clock_skew: invalid duration "lots"`, 8},
		{"bad encryption", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tencryption yes"), "want off, allowed or required", 8},
		{"sp_certificate one file", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tsp_certificate sp.crt"), "want <cert_file> <key_file>", 8},
		{"sp_previous_key empty", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tsp_previous_key"), "give one or more PEM key files", 8},
		{"bad size", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tmax_response_size big"), `"big" is not a size`, 8},
		{"graph unknown", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tgraph {\n\t\t\t\tsecret x\n\t\t\t}"), `unknown graph setting "secret"`, 9},
		{"graph incomplete", withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tgraph {\n\t\t\t\tclient_id x\n\t\t\t}"), "graph needs tenant_id, client_id and client_secret", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a App
			err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("UnmarshalCaddyfile(%q) = nil; want error containing %q", tt.input, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("UnmarshalCaddyfile() error = %q; want it to contain %q", err, tt.want)
			}
			if tt.line > 0 && !strings.Contains(err.Error(), ":"+strconv.Itoa(tt.line)) {
				t.Errorf("UnmarshalCaddyfile() error = %q; want it to name line %d", err, tt.line)
			}
		})
	}
}

// optionHead opens a global option; companyBlock adds a company with one
// provider (7 lines); the caller closes the option with "}".
const optionHead = "engage_sso {\n\tbase_url https://e.example\n"

func companyBlock(id, domain, label string) string {
	return "\tcompany " + id + " {\n\t\tdomains " + domain + "\n\t\tprovider " + label + " {\n\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t}\n\t}\n"
}

func TestParseGlobalOptionTwice(t *testing.T) {
	d := caddyfile.NewTestDispenser("engage_sso {\n}")
	if _, err := parseGlobalOption(d, "existing"); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("parseGlobalOption(twice) = %v; want 'given twice' error", err)
	}
}

func TestUnmarshalHandler(t *testing.T) {
	tests := []struct {
		input   string
		want    Handler
		wantErr string
	}{
		{input: "engage_sso", want: Handler{}},
		{input: "engage_sso {\n}", want: Handler{}},
		{input: "engage_sso {\n\theader X-Identity\n\tplain_headers\n}", want: Handler{Header: "X-Identity", PlainHeaders: true}},
		{input: "engage_sso extra", wantErr: "wrong argument count"},
		{input: "engage_sso {\n\theader\n}", wantErr: "header: missing value"},
		{input: "engage_sso {\n\theader Bad:Name\n}", wantErr: "not a valid header name"},
		{input: "engage_sso {\n\theader A\n\theader B\n}", wantErr: "header is set twice"},
		{input: "engage_sso {\n\tplain_headers yes\n}", wantErr: "wrong argument count"},
		{input: "engage_sso {\n\tcompany x {\n\t}\n}", wantErr: "go in the engage_sso global option"},
	}
	for _, tt := range tests {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("UnmarshalCaddyfile(%q) error = %v; want %q", tt.input, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("UnmarshalCaddyfile(%q) = %v", tt.input, err)
			continue
		}
		if h.Header != tt.want.Header || h.PlainHeaders != tt.want.PlainHeaders {
			t.Errorf("UnmarshalCaddyfile(%q) = %+v; want %+v", tt.input, h, tt.want)
		}
	}
}

func TestProviderAllowSHA1Caddyfile(t *testing.T) {
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tallow_sha1 on"))); err != nil {
		t.Fatal(err)
	}
	if !a.Companies[0].Providers[0].AllowSHA1 {
		t.Error("allow_sha1 on was not parsed")
	}
	var b App
	if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser(withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tallow_sha1 perhaps"))); err == nil {
		t.Error("allow_sha1 perhaps: want an error")
	}
}

func TestProviderSAMLOptionsCaddyfile(t *testing.T) {
	var a App
	input := withProvider("\t\t\tmetadata_file x\n\t\t\tagent a\n\t\t\tclock_skew 5m\n\t\t\tencryption required\n\t\t\tsign_requests on\n" +
		"\t\t\tsp_certificate /etc/engage/sp.crt /etc/engage/sp.key\n\t\t\tsp_previous_key /etc/engage/old1.key /etc/engage/old2.key\n\t\t\tmax_response_size 512KiB\n" +
		"\t\t\tgraph {\n\t\t\t\ttenant_id 5d1c9a70-3f2b-4e8d-9c6a-7b0e1f2a3b4c\n\t\t\t\tclient_id 11111111-2222-3333-4444-555555555555\n" +
		"\t\t\t\tclient_secret {env.GRAPH_SECRET}\n\t\t\t\tgraph_url https://graph.microsoft.us\n\t\t\t\ttimeout 5s\n\t\t\t}")
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	p := a.Companies[0].Providers[0]
	want := &Provider{
		Label: "contoso", MetadataFile: "x", Roles: map[string][]string{"agent": {"a"}},
		ClockSkew: caddy.Duration(5 * time.Minute), Encryption: "required", SignRequests: true,
		SPCertFile: "/etc/engage/sp.crt", SPKeyFile: "/etc/engage/sp.key", MaxResponseSize: 512 << 10,
		SPPreviousKeyFiles: []string{"/etc/engage/old1.key", "/etc/engage/old2.key"},
		Graph: &GraphConfig{
			TenantID: "5d1c9a70-3f2b-4e8d-9c6a-7b0e1f2a3b4c", ClientID: "11111111-2222-3333-4444-555555555555",
			ClientSecret: "{env.GRAPH_SECRET}", GraphURL: "https://graph.microsoft.us", Timeout: caddy.Duration(5 * time.Second),
		},
	}
	got, _ := json.Marshal(p)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Errorf("parsed provider =\n%s\nwant\n%s", got, wantJSON)
	}
	// The secret stays a placeholder in the config (and so in caddy adapt's
	// output); it is resolved at provisioning.
	if !strings.Contains(string(got), `"client_secret":"{env.GRAPH_SECRET}"`) {
		t.Errorf("client_secret was resolved while parsing: %s", got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"16384": 16384, "512KiB": 512 << 10, "1MiB": 1 << 20, "64KB": 64 << 10, "2MB": 2 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1GiB2", "KiB", "1.5MiB", "99999999999"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = nil error; want one", in)
		}
	}
}
