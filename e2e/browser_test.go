package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/engage-sso/engage-sso/internal/devidp"
)

// demoUser returns the dev IdP's user with the given email.
func demoUser(t *testing.T, email string) devidp.User {
	t.Helper()
	for _, u := range devidp.DemoUsers() {
		if u.Email == email {
			return u
		}
	}
	t.Fatalf("no demo user %q", email)
	return devidp.User{}
}

// signIn opens a protected page, enters the email at engage-sso's login
// page, signs in at the dev IdP and waits for the page it lands on.
func signIn(t *testing.T, ctx context.Context, e *env, email, path string) string {
	t.Helper()
	return signInVia(t, ctx, e, email, path, false)
}

// signInVia is signIn; with shortcut it starts at the provider's shortcut
// URL (Azure's "Sign on URL"), skipping the email step.
func signInVia(t *testing.T, ctx context.Context, e *env, email, path string, shortcut bool) string {
	t.Helper()
	return signInAt(t, ctx, e, email, path, shortcutLabel(shortcut))
}

func shortcutLabel(shortcut bool) string {
	if shortcut {
		return "contoso"
	}
	return ""
}

// signInAt is signIn; with a label it starts at that provider's shortcut
// URL (Azure's "Sign on URL"), skipping the email step.
func signInAt(t *testing.T, ctx context.Context, e *env, email, path, label string) string {
	t.Helper()
	u := demoUser(t, email)
	type stage struct {
		name  string
		steps []chromedp.Action[chromedp.Void]
	}
	stages := []stage{
		{"open a protected page and reach the login page", []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(e.gateway + path),
			chromedp.WaitVisible(chromedp.CSS(`#email`)),
		}},
		{"enter the email, choose the contoso provider and reach the IdP", []chromedp.Action[chromedp.Void]{
			chromedp.SendKeys(chromedp.CSS(`#email`), u.Email),
			chromedp.Click(chromedp.CSS(`#continue`)),
			// Contoso has two providers (contoso, contoso-strict): the
			// chooser page lists both.
			chromedp.WaitVisible(chromedp.CSS(`#choices`)),
			chromedp.Click(chromedp.CSS(`#choices a[href^="/sso/login/contoso?"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#signin-form #password`)),
		}},
		{"sign in at the IdP and come back to Engage", []chromedp.Action[chromedp.Void]{
			chromedp.SetValue(chromedp.CSS(`#signin-form #email`), u.Email),
			chromedp.SendKeys(chromedp.CSS(`#signin-form #password`), u.Password),
			chromedp.Click(chromedp.CSS(`#signin`)),
			// The demo page has #role, error pages #title.
			chromedp.WaitVisible(chromedp.CSS(`#role, #title`)),
		}},
	}
	if label != "" {
		stages = append([]stage{{"open the provider's shortcut URL and reach the IdP", []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(e.gateway + "/sso/login/" + label + "?rd=" + url.QueryEscape(path)),
			chromedp.WaitVisible(chromedp.CSS(`#signin-form #password`)),
		}}}, stages[2:]...)
	}
	for _, st := range stages {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := chromedp.Do(sctx, st.steps...)
		cancel()
		if err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("signing in as %s: %s: %v\nat %s\n%.2000s", email, st.name, err, loc, body)
		}
	}
	landed, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return landed
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func TestBrowserSignInEachDemoUser(t *testing.T) {
	e := startEnv(t)
	tests := []struct {
		email    string
		shortcut bool   // start at /sso/login/contoso instead of the email page
		role     string // expected role on the demo page, or
		reason   string // expected refusal reason on engage-sso's error page
	}{
		{email: "adele.vance@contoso.com", role: "agent"},
		{email: "megan.bowen@contoso.com", role: "supervisor", shortcut: true},
		{email: "alex.wilber@contoso.com", role: "account_holder"},
		{email: "diego.siciliani@contoso.com", role: "supervisor"}, // two role groups: highest wins
		{email: "lynne.robbins@contoso.com", reason: "no_role"},
		// A guest of Contoso's tenant from a domain Contoso has not
		// authorised: the email page would not even send them to Azure,
		// so they come through the shortcut URL and the ACS refuses them.
		{email: "pat.kim@fabrikam.com", reason: "domain_not_authorised", shortcut: true},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			ctx := newBrowser(t)
			landed := signInVia(t, ctx, e, tt.email, "/reports/weekly?team=7", tt.shortcut)
			if tt.reason != "" {
				if got := text(t, ctx, "#reason"); got != tt.reason {
					t.Errorf("refusal reason = %q; want %q (page title %q)", got, tt.reason, text(t, ctx, "#title"))
				}
				id := text(t, ctx, "#correlation-id")
				if id == "" {
					t.Fatal("error page shows no correlation id")
				}
				if lines := e.logLines(t, id); len(lines) == 0 {
					t.Errorf("correlation id %q from the page is in no log line", id)
				} else if !strings.Contains(strings.Join(lines, "\n"), tt.reason) {
					t.Errorf("log lines for %q do not name the reason %q: %q", id, tt.reason, lines)
				}
				assertNoSession(t, ctx, e)
				return
			}
			lu, err := url.Parse(landed)
			if err != nil {
				t.Fatal(err)
			}
			if lu.Path != "/reports/weekly" || lu.Query().Get("team") != "7" {
				t.Errorf("landed on %q; want the original /reports/weekly?team=7", landed)
			}
			if got := text(t, ctx, "#role"); got != tt.role {
				t.Errorf("role on the demo page = %q; want %q", got, tt.role)
			}
			if got := text(t, ctx, "#path"); got != "/reports/weekly" {
				t.Errorf("path seen by the upstream = %q; want /reports/weekly", got)
			}
			if !strings.Contains(text(t, ctx, "body"), tt.email) {
				t.Errorf("demo page does not show the email %s", tt.email)
			}
			checkSessionCookie(t, ctx, e)
		})
	}
}

// checkSessionCookie asserts the session cookie's flags on the plain-HTTP
// demo: HttpOnly, SameSite=Lax, path /, and not Secure (plain HTTP only).
func checkSessionCookie(t *testing.T, ctx context.Context, e *env) {
	t.Helper()
	cookies := browserCookies(t, ctx, e)
	var sess *network.Cookie
	for _, c := range cookies {
		if c.Name == "engage_sso" {
			sess = c
		}
	}
	if sess == nil {
		t.Fatalf("no engage_sso cookie after sign-in; cookies: %v", cookies)
	}
	if !sess.HTTPOnly || sess.SameSite != network.CookieSameSiteLax || sess.Path != "/" || sess.Secure {
		t.Errorf("session cookie flags: HttpOnly=%v SameSite=%q Path=%q Secure=%v; want true, Lax, /, false on plain HTTP",
			sess.HTTPOnly, sess.SameSite, sess.Path, sess.Secure)
	}
	if len(sess.Value) < 43 {
		t.Errorf("session cookie value has %d characters; want at least 43 (256 bits)", len(sess.Value))
	}
	if !sess.Session {
		t.Errorf("session cookie is persistent (expires %v); want a browser-session cookie", sess.Expires)
	}
}

func browserCookies(t *testing.T, ctx context.Context, e *env) []*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{e.gateway + "/"}})
	if err != nil {
		t.Fatalf("reading cookies: %v", err)
	}
	return res.Cookies
}

func assertNoSession(t *testing.T, ctx context.Context, e *env) {
	t.Helper()
	for _, c := range browserCookies(t, ctx, e) {
		if c.Name == "engage_sso" {
			t.Errorf("a refused sign-in set a session cookie")
		}
	}
}

func TestBrowserForgedIdentityHeaderNeverReachesUpstream(t *testing.T) {
	e := startEnv(t)
	ctx := newBrowser(t)
	// Every request of this tab carries forged identity headers, in the
	// spellings a naive proxy would let through.
	forged := network.Headers{
		"X-Engage-Identity": "eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWNjb3VudF9ob2xkZXIifQ.",
		"X_Engage_Identity": "forged-underscore",
		"X-Engage-Role":     "account_holder",
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: forged}); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, e, "adele.vance@contoso.com", "/")
	if got := text(t, ctx, "#role"); got != "agent" {
		t.Errorf("role = %q; the forged headers must not make an agent an account holder", got)
	}
	if got := text(t, ctx, "#identity-headers"); got != "1" {
		t.Errorf("identity headers seen by the upstream = %q; want exactly 1 (ours)", got)
	}
}

func TestBrowserLogout(t *testing.T) {
	e := startEnv(t)
	ctx := newBrowser(t)
	signIn(t, ctx, e, "megan.bowen@contoso.com", "/")
	err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/sso/logout"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signin`)),
		chromedp.Navigate(e.gateway+"/after-logout"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
	)
	if err != nil {
		t.Fatalf("logging out: %v", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "/sso/login?rd=%2Fafter-logout") {
		t.Errorf("after logout, a protected page went to %q; want the login page", loc)
	}
	assertNoSession(t, ctx, e)
}

func TestBrowserUnknownDomainAtLoginPage(t *testing.T) {
	e := startEnv(t)
	ctx := newBrowser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.gateway+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), "someone@unknown-company.example"),
		chromedp.Click(chromedp.CSS(`#continue`)),
		chromedp.WaitVisible(chromedp.CSS(`#error`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	msg := text(t, ctx, "#error")
	if !strings.Contains(msg, "unknown-company.example") {
		t.Errorf("login page error = %q; want it to name the domain", msg)
	}
}
