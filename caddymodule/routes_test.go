package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

var reasonRE = regexp.MustCompile(`id="reason">([^<]+)<`)

// reason returns the reason shown on an error page.
func (r result) reason() string {
	if m := reasonRE.FindStringSubmatch(r.body()); m != nil {
		return m[1]
	}
	return ""
}

func TestLoginRoundTrip(t *testing.T) {
	t.Parallel()
	for _, baseURL := range []string{"http://localhost:8080", "https://engage.example.com"} {
		t.Run(baseURL, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{baseURL: baseURL})
			https := strings.HasPrefix(baseURL, "https:")

			ls := e.startLogin(t, "contoso", "/reports?week=12")
			if !session.ValidToken(ls.relay) {
				t.Errorf("RelayState %q is not an unguessable token", ls.relay)
			}
			if cc := ls.rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("login start: Cache-Control = %q; want no-store", cc)
			}
			binding := ls.cookie("engage_sso_login")
			if !https && binding != nil {
				t.Errorf("http base_url: login start set a binding cookie %v; want none (browsers refuse SameSite=None without Secure)", binding)
			}
			var cookies []*http.Cookie
			if https {
				if binding == nil {
					t.Fatal("https base_url: login start set no engage_sso_login binding cookie")
				}
				if !binding.Secure || !binding.HttpOnly || binding.SameSite != http.SameSiteNoneMode || binding.Path != "/sso/saml/" {
					t.Errorf("binding cookie = %+v; want Secure, HttpOnly, SameSite=None, Path=/sso/saml/", binding)
				}
				cookies = append(cookies, &http.Cookie{Name: binding.Name, Value: binding.Value})
			}

			res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay, cookies...)
			if res.rec.Code != http.StatusSeeOther {
				t.Fatalf("ACS = %d; want 303\n%s", res.rec.Code, res.body())
			}
			if loc := res.rec.Header().Get("Location"); loc != "/reports?week=12" {
				t.Errorf("ACS redirected to %q; want the saved /reports?week=12", loc)
			}
			c := res.cookie("engage_sso")
			if c == nil || !session.ValidToken(c.Value) {
				t.Fatalf("ACS set no session cookie: %v", res.rec.Header()["Set-Cookie"])
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != https {
				t.Errorf("session cookie = %+v; want HttpOnly, SameSite=Lax, Path=/, Secure=%v", c, https)
			}

			// The new session lets the user through as who the IdP said.
			app := e.get(t, "/reports", &http.Cookie{Name: c.Name, Value: c.Value})
			if app.next == nil {
				t.Fatalf("the new session was refused: %d", app.rec.Code)
			}
			id, err := e.verifier(t).Verify(context.Background(), app.next.Header.Get("X-Engage-Identity"))
			if err != nil {
				t.Fatal(err)
			}
			u := samltest.DefaultUser()
			if id.Email != u.Email || id.Role != "supervisor" || id.Company != "contoso" || id.Provider != "contoso" ||
				id.UserID != u.ObjectID || id.TenantID != testTenant {
				t.Errorf("identity = %+v; want %s, supervisor at contoso via contoso, user id %s", id, u.Email, u.ObjectID)
			}
		})
	}
}

func TestLoginBindingCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{baseURL: "https://engage.example.com"})
	other, _, _ := session.NewToken(nil)
	tests := []struct {
		name    string
		cookie  func(binding *http.Cookie) *http.Cookie
		wantOK  bool
		comment string
	}{
		{"none", func(*http.Cookie) *http.Cookie { return nil }, false, "login CSRF: a response posted from a browser that did not start the login"},
		{"another value", func(b *http.Cookie) *http.Cookie { return &http.Cookie{Name: b.Name, Value: other} }, false, "another browser's binding"},
		{"garbage", func(b *http.Cookie) *http.Cookie { return &http.Cookie{Name: b.Name, Value: "x"} }, false, ""},
		{"the one set", func(b *http.Cookie) *http.Cookie { return &http.Cookie{Name: b.Name, Value: b.Value} }, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := e.startLogin(t, "contoso", "/x")
			binding := ls.cookie("engage_sso_login")
			if binding == nil {
				t.Fatal("no binding cookie")
			}
			var cookies []*http.Cookie
			if c := tt.cookie(binding); c != nil {
				cookies = append(cookies, c)
			}
			res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay, cookies...)
			gotOK := res.rec.Code == http.StatusSeeOther && res.cookie("engage_sso") != nil
			if gotOK != tt.wantOK {
				t.Fatalf("ACS = %d, session %v; want accepted %v (%s)\n%s", res.rec.Code, res.cookie("engage_sso") != nil, tt.wantOK, tt.comment, res.body())
			}
			if !tt.wantOK && (res.rec.Code != http.StatusBadRequest || res.reason() != "browser_mismatch") {
				t.Errorf("refusal = %d %q; want 400 browser_mismatch", res.rec.Code, res.reason())
			}
		})
	}

	// A second login in the same browser reuses its binding, so that logins
	// in two tabs both complete.
	first := e.startLogin(t, "contoso", "/a")
	b := first.cookie("engage_sso_login")
	second := e.startLogin(t, "contoso", "/b", &http.Cookie{Name: b.Name, Value: b.Value})
	if b2 := second.cookie("engage_sso_login"); b2 == nil || b2.Value != b.Value {
		t.Errorf("second login's binding = %v; want the browser's existing %q", b2, b.Value)
	}
	for _, ls := range []loginStart{first, second} {
		res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay, &http.Cookie{Name: b.Name, Value: b.Value})
		if res.rec.Code != http.StatusSeeOther {
			t.Errorf("tab login = %d; want 303\n%s", res.rec.Code, res.body())
		}
	}
}

func TestLoginRotatesSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	oldTok, old := e.newSession(t, nil)
	ls := e.startLogin(t, "contoso", "/x", e.sessionCookie(oldTok))
	res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay, e.sessionCookie(oldTok))
	c := res.cookie("engage_sso")
	if res.rec.Code != http.StatusSeeOther || c == nil {
		t.Fatalf("ACS = %d, cookie %v; want 303 and a session cookie\n%s", res.rec.Code, c, res.body())
	}
	if c.Value == oldTok {
		t.Error("login kept the session cookie value it was sent; want a new one")
	}
	if _, err := e.mem.LoadSession(context.Background(), old.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadSession(previous session) = %v; want it deleted", err)
	}
	if res := e.get(t, "/", e.sessionCookie(oldTok)); res.next != nil {
		t.Error("the previous session cookie still lets requests through")
	}
	if res := e.get(t, "/", &http.Cookie{Name: c.Name, Value: c.Value}); res.next == nil {
		t.Errorf("the new session cookie is refused: %d", res.rec.Code)
	}
}

func TestLoginRelayStateSingleUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ls := e.startLogin(t, "contoso", "/x")
	if res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay); res.rec.Code != http.StatusSeeOther {
		t.Fatalf("first use = %d; want 303\n%s", res.rec.Code, res.body())
	}
	// A fresh, validly signed response to the same request, with the same
	// RelayState: the pending login is gone, so it answers nothing of ours.
	res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay)
	if res.rec.Code != http.StatusForbidden || res.cookie("engage_sso") != nil || res.reason() != "unknown_request" {
		t.Errorf("second use = %d %q, session %v; want 403 unknown_request and no session", res.rec.Code, res.reason(), res.cookie("engage_sso") != nil)
	}
}

func TestLoginPendingForOtherProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	fab := samltest.User{ObjectID: "0b1c2d3e-0000-4000-8000-000000000001", Email: "bob@fabrikam.example", Groups: []string{groupAgent}}

	ls := e.startLogin(t, "fabrikam-a", "/x")
	res := e.postACS(t, "fabrikam-b", e.samlResponse(t, "fabrikam-b", ls.requestID, fab), ls.relay)
	if res.rec.Code != http.StatusBadRequest || res.cookie("engage_sso") != nil || res.reason() != "wrong_destination" {
		t.Errorf("A's login posted to B = %d %q, session %v; want 400 wrong_destination and no session\n%s",
			res.rec.Code, res.reason(), res.cookie("engage_sso") != nil, res.body())
	}
	if _, err := e.mem.TakePending(context.Background(), ls.relay); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("TakePending(relay) after the refusal = %v; want it used up", err)
	}

	// The same flow at the right ACS works, so the refusal above is about
	// the provider.
	ls = e.startLogin(t, "fabrikam-a", "/x")
	if res := e.postACS(t, "fabrikam-a", e.samlResponse(t, "fabrikam-a", ls.requestID, fab), ls.relay); res.rec.Code != http.StatusSeeOther {
		t.Errorf("A's login posted to A = %d; want 303\n%s", res.rec.Code, res.body())
	}
}

func TestLoginDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tests := []struct {
		name       string
		email, rd  string
		wantStatus int
		wantLoc    string   // for redirects
		wantBody   []string // for pages
	}{
		{"one provider", "alice@contoso.example", "/reports?week=12", http.StatusSeeOther,
			"/sso/login/contoso?login_hint=alice%40contoso.example&rd=%2Freports%3Fweek%3D12", nil},
		{"case and spaces", "  Alice@CONTOSO.Example ", "", http.StatusSeeOther,
			"/sso/login/contoso?login_hint=alice%40contoso.example", nil},
		{"wildcard domain", "carol@eu.branch.contoso.example", "", http.StatusSeeOther,
			"/sso/login/contoso?login_hint=carol%40eu.branch.contoso.example", nil},
		{"unsafe rd dropped", "alice@contoso.example", "//evil.example/", http.StatusSeeOther,
			"/sso/login/contoso?login_hint=alice%40contoso.example", nil},
		{"two providers: chooser", "bob@fabrikam.example", "/x", http.StatusOK, "",
			[]string{"Fabrikam Inc", `href="/sso/login/fabrikam-a?login_hint=bob%40fabrikam.example&amp;rd=%2Fx"`,
				`href="/sso/login/fabrikam-b?login_hint=bob%40fabrikam.example&amp;rd=%2Fx"`}},
		{"unknown domain", "eve@unknown.example", "/x", http.StatusNotFound, "",
			[]string{"not set up for unknown.example", `name="rd" value="/x"`}},
		{"parent of a wildcard domain", "dan@branch.contoso.example", "", http.StatusNotFound, "",
			[]string{"not set up for branch.contoso.example"}},
		{"invalid email", "not an email", "/x", http.StatusUnprocessableEntity, "",
			[]string{`id="error"`, `value="not an email"`}},
		{"empty email", "", "", http.StatusUnprocessableEntity, "", []string{`id="error"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"email": {tt.email}}
			if tt.rd != "" {
				form.Set("rd", tt.rd)
			}
			res := e.postForm(t, "/sso/login", form)
			if res.rec.Code != tt.wantStatus {
				t.Fatalf("POST /sso/login %v = %d; want %d\n%s", form, res.rec.Code, tt.wantStatus, res.body())
			}
			if loc := res.rec.Header().Get("Location"); loc != tt.wantLoc {
				t.Errorf("Location = %q; want %q", loc, tt.wantLoc)
			}
			for _, s := range tt.wantBody {
				if !strings.Contains(res.body(), s) {
					t.Errorf("page does not contain %q:\n%s", s, res.body())
				}
			}
		})
	}
}

func TestLoginPageWhenSignedIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, _ := e.newSession(t, nil)
	tests := []struct {
		target  string
		cookie  bool
		wantLoc string // "" for the email form
	}{
		{"/sso/login?rd=%2Freports%3Fweek%3D12", true, "/reports?week=12"},
		{"/sso/login", true, "/"},
		{"/sso/login?rd=https%3A%2F%2Fevil.example%2F", true, "/"},
		{"/sso/login?rd=%2Freports", false, ""},
	}
	for _, tt := range tests {
		var cookies []*http.Cookie
		if tt.cookie {
			cookies = append(cookies, e.sessionCookie(tok))
		}
		res := e.get(t, tt.target, cookies...)
		if tt.wantLoc == "" {
			if res.rec.Code != http.StatusOK || !strings.Contains(res.body(), `id="login"`) {
				t.Errorf("GET %s signed out = %d; want 200 and the email form", tt.target, res.rec.Code)
			}
			continue
		}
		if res.rec.Code != http.StatusFound || res.rec.Header().Get("Location") != tt.wantLoc {
			t.Errorf("GET %s signed in = %d to %q; want 302 to %q", tt.target, res.rec.Code, res.rec.Header().Get("Location"), tt.wantLoc)
		}
	}
}

func TestLoginMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tests := []struct {
		method, target, wantAllow string
	}{
		{http.MethodPut, "/sso/login", "GET, POST"},
		{http.MethodPost, "/sso/login/contoso", "GET"},
		{http.MethodGet, "/sso/saml/contoso/acs", "POST"},
	}
	for _, tt := range tests {
		res := e.serve(t, httptest.NewRequest(tt.method, tt.target, nil))
		if res.rec.Code != http.StatusMethodNotAllowed || res.rec.Header().Get("Allow") != tt.wantAllow {
			t.Errorf("%s %s = %d, Allow %q; want 405, Allow %q", tt.method, tt.target, res.rec.Code, res.rec.Header().Get("Allow"), tt.wantAllow)
		}
	}
}
