package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (e *env) nwACS() string      { return e.gateway + "/sso/saml/northwind/acs" }
func (e *env) nwEntityID() string { return e.gateway + "/sso/saml/northwind" }

// nwResponse is a valid, IdP-initiated response from Northwind's IdP for
// Northwind's provider, changed by mod.
func (e *env) nwResponse(t *testing.T, mod func(*samltest.ResponseOptions)) []byte {
	o := samltest.ResponseOptions{
		Destination: e.nwACS(),
		Audience:    e.nwEntityID(),
		User: samltest.User{
			ObjectID:  "5e6f7a8b-0000-4000-8000-00000000abcd",
			Email:     "nancy.davolio@northwind.example",
			GivenName: "Nancy",
			Surname:   "Davolio",
			Roles:     []string{"Engage.Supervisor"},
		},
	}
	if mod != nil {
		mod(&o)
	}
	return e.northwind.Response(t, o)
}

type acsResult struct {
	status  int
	body    string
	cookies []*http.Cookie
	loc     string
}

func postACS(t *testing.T, acs, samlResponse, relay string) acsResult {
	t.Helper()
	form := url.Values{"SAMLResponse": {samlResponse}}
	if relay != "" {
		form.Set("RelayState", relay)
	}
	resp, err := noRedirect.PostForm(acs, form)
	if err != nil {
		t.Fatalf("POST %s: %v", acs, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return acsResult{status: resp.StatusCode, body: string(b), cookies: resp.Cookies(), loc: resp.Header.Get("Location")}
}

func hasSessionCookie(cs []*http.Cookie) bool {
	for _, c := range cs {
		if c.Name == "engage_sso" && c.Value != "" && c.MaxAge >= 0 {
			return true
		}
	}
	return false
}

var correlationRE = regexp.MustCompile(`id="correlation-id">([^<]+)<`)
var reasonRE = regexp.MustCompile(`id="reason">([^<]+)<`)

// TestACSAcceptsValidResponse proves the refusals below are refusals of
// the defect, not of everything: the same IdP and ACS accept a good
// response, IdP-initiated, landing on the provider's default path.
func TestACSAcceptsValidResponse(t *testing.T) {
	e := startEnv(t)
	r := postACS(t, e.nwACS(), samltest.Encode(e.nwResponse(t, nil)), "")
	if r.status != http.StatusSeeOther || !hasSessionCookie(r.cookies) {
		t.Fatalf("valid response: status %d, session cookie %v; want 303 and a session\n%s", r.status, hasSessionCookie(r.cookies), r.body)
	}
	if r.loc != "/welcome" {
		t.Errorf("IdP-initiated login went to %q; want the provider's default_path /welcome", r.loc)
	}
	// The session works on the protected site, with the right identity.
	req, _ := http.NewRequest(http.MethodGet, e.gateway+"/api/me", nil)
	for _, c := range r.cookies {
		req.AddCookie(c)
	}
	req.Header.Set("X-Engage-Identity", "forged")
	req.Header.Set("x_engage_identity", "forged-too")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct{ Email, Role, Company, Provider string }
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/me with the new session = %d, %v", resp.StatusCode, err)
	}
	want := struct{ Email, Role, Company, Provider string }{"nancy.davolio@northwind.example", "supervisor", "northwind", "northwind"}
	if me != want {
		t.Errorf("GET /api/me identity = %+v; want %+v", me, want)
	}
}

func TestACSRelayStateIsNotAnOpenRedirect(t *testing.T) {
	e := startEnv(t)
	for relay, want := range map[string]string{
		"/reports?x=1":          "/reports?x=1",
		"https://evil.example/": "/welcome",
		"//evil.example/path":   "/welcome",
		"/\\evil.example":       "/welcome",
		"/sso/logout":           "/welcome",
		"javascript:alert(1)":   "/welcome",
	} {
		r := postACS(t, e.nwACS(), samltest.Encode(e.nwResponse(t, nil)), relay)
		if r.status != http.StatusSeeOther || r.loc != want {
			t.Errorf("RelayState %q: %d to %q; want 303 to %q", relay, r.status, r.loc, want)
		}
	}
}

func TestACSRefusesBadResponses(t *testing.T) {
	e := startEnv(t)
	contosoACS := e.gateway + "/sso/saml/contoso/acs"
	tests := []struct {
		name   string
		acs    string
		resp   func(t *testing.T) string
		status int
		reason string
	}{
		{
			name:   "malformed base64",
			acs:    e.nwACS(),
			resp:   func(*testing.T) string { return "%%%not-base64%%%" },
			status: http.StatusBadRequest, reason: "malformed_response",
		},
		{
			name:   "not XML",
			acs:    e.nwACS(),
			resp:   func(*testing.T) string { return base64.StdEncoding.EncodeToString([]byte("hello")) },
			status: http.StatusBadRequest, reason: "malformed_response",
		},
		{
			name: "tampered signature (email changed after signing)",
			acs:  e.nwACS(),
			resp: func(t *testing.T) string {
				x := string(e.nwResponse(t, nil))
				x = strings.ReplaceAll(x, "nancy.davolio@northwind.example", "andrew.fuller@northwind.example")
				return samltest.Encode([]byte(x))
			},
			status: http.StatusForbidden, reason: "invalid_signature",
		},
		{
			name: "expired assertion",
			acs:  e.nwACS(),
			resp: func(t *testing.T) string {
				return samltest.Encode(e.nwResponse(t, func(o *samltest.ResponseOptions) {
					o.IssueInstant = time.Now().Add(-3 * time.Hour)
				}))
			},
			status: http.StatusForbidden, reason: "expired",
		},
		{
			name: "response meant for another provider's ACS",
			acs:  e.nwACS(),
			resp: func(t *testing.T) string {
				return samltest.Encode(e.nwResponse(t, func(o *samltest.ResponseOptions) {
					o.Destination = contosoACS
					o.Audience = e.gateway + "/sso/saml/contoso"
				}))
			},
			status: http.StatusForbidden, reason: "wrong_destination",
		},
		{
			name: "company A's IdP posted to company B's ACS",
			acs:  contosoACS,
			resp: func(t *testing.T) string {
				return samltest.Encode(e.nwResponse(t, func(o *samltest.ResponseOptions) {
					o.Destination = contosoACS
					o.Audience = e.gateway + "/sso/saml/contoso"
				}))
			},
			status: http.StatusForbidden, reason: "",
		},
		{
			name: "company A's IdP asserting an email of company B's domain",
			acs:  e.nwACS(),
			resp: func(t *testing.T) string {
				return samltest.Encode(e.nwResponse(t, func(o *samltest.ResponseOptions) {
					o.User.Email = "alex.wilber@contoso.com"
				}))
			},
			status: http.StatusForbidden, reason: "domain_not_authorised",
		},
		{
			name: "answers a request we never sent",
			acs:  e.nwACS(),
			resp: func(t *testing.T) string {
				return samltest.Encode(e.nwResponse(t, func(o *samltest.ResponseOptions) {
					o.InResponseTo = "id-never-issued"
				}))
			},
			status: http.StatusForbidden, reason: "unknown_request",
		},
		{
			name:   "no SAMLResponse",
			acs:    e.nwACS(),
			resp:   func(*testing.T) string { return "" },
			status: http.StatusBadRequest, reason: "malformed_response",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postACS(t, tt.acs, tt.resp(t), "")
			if r.status != tt.status {
				t.Errorf("status = %d; want %d\n%s", r.status, tt.status, r.body)
			}
			if hasSessionCookie(r.cookies) {
				t.Error("a refused response set a session cookie")
			}
			m := reasonRE.FindStringSubmatch(r.body)
			if m == nil {
				t.Fatalf("error page names no reason:\n%s", r.body)
			}
			if tt.reason != "" && m[1] != tt.reason {
				t.Errorf("reason = %q; want %q", m[1], tt.reason)
			}
			for _, leak := range []string{"goroutine", "panic", "<saml", "Assertion", ".go:"} {
				if strings.Contains(r.body, leak) {
					t.Errorf("error page leaks %q", leak)
				}
			}
			c := correlationRE.FindStringSubmatch(r.body)
			if c == nil {
				t.Fatalf("error page has no correlation id:\n%s", r.body)
			}
			lines := e.logLines(t, c[1])
			if len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), m[1]) {
				t.Errorf("no log line with correlation id %s and reason %s: %q", c[1], m[1], lines)
			}
		})
	}
}

func TestACSReplayRefused(t *testing.T) {
	e := startEnv(t)
	resp := samltest.Encode(e.nwResponse(t, nil))
	if r := postACS(t, e.nwACS(), resp, ""); r.status != http.StatusSeeOther {
		t.Fatalf("first post: %d; want 303\n%s", r.status, r.body)
	}
	r := postACS(t, e.nwACS(), resp, "")
	if r.status != http.StatusForbidden || hasSessionCookie(r.cookies) || !strings.Contains(r.body, "replayed") {
		t.Errorf("replayed post: %d, session %v; want 403 replayed and no session", r.status, hasSessionCookie(r.cookies))
	}
}

func TestUnauthenticatedRequests(t *testing.T) {
	e := startEnv(t)
	tests := []struct {
		method, path, accept string
		status               int
		location             string
	}{
		{"GET", "/reports?week=12", "text/html", http.StatusFound, "/sso/login?rd=%2Freports%3Fweek%3D12"},
		{"GET", "/api/data", "application/json", http.StatusUnauthorized, ""},
		{"POST", "/api/data", "text/html", http.StatusUnauthorized, ""},
		{"HEAD", "/", "", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, e.gateway+tt.path, nil)
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		// A forged token must not help an unauthenticated request.
		req.Header.Set("X-Engage-Identity", "forged")
		req.AddCookie(&http.Cookie{Name: "engage_sso", Value: strings.Repeat("A", 43)})
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
			t.Errorf("%s %s: %d %q; want %d %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
		}
		if tt.status == http.StatusUnauthorized && tt.method != "HEAD" && !strings.Contains(string(b), `"error":"unauthenticated"`) {
			t.Errorf("%s %s: body %s; want JSON error unauthenticated", tt.method, tt.path, b)
		}
	}
}
