package multi

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/engage-sso/engage-sso/internal/devidp"
	"github.com/engage-sso/engage-sso/internal/e2etest"
)

// TestBrowserLoginThroughAAcceptedByB signs in through A in headless
// Chromium, with the dev IdP, and opens B with the same browser: the cookie
// A set is accepted by B, for the same session. Logging out on B then
// sends the browser to sign in on A.
func TestBrowserLoginThroughAAcceptedByB(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	c := newCluster(t)
	const email = "megan.bowen@contoso.com"

	steps := []struct {
		name    string
		actions []chromedp.Action[chromedp.Void]
	}{
		{"open a page on A and reach the login page", []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(c.a.url + "/reports/weekly?team=7"),
			chromedp.WaitVisible(chromedp.CSS(`#email`)),
		}},
		{"enter the email and reach the IdP", []chromedp.Action[chromedp.Void]{
			chromedp.SendKeys(chromedp.CSS(`#email`), email),
			chromedp.Click(chromedp.CSS(`#continue`)),
			chromedp.WaitVisible(chromedp.CSS(`#signin-form #password`)),
		}},
		{"sign in at the IdP and come back to A", []chromedp.Action[chromedp.Void]{
			chromedp.SetValue(chromedp.CSS(`#signin-form #email`), email),
			chromedp.SendKeys(chromedp.CSS(`#signin-form #password`), devidp.DemoPassword),
			chromedp.Click(chromedp.CSS(`#signin`)),
			// The demo page has #role, error pages #title.
			chromedp.WaitVisible(chromedp.CSS(`#role, #title`)),
		}},
	}
	for _, st := range steps {
		do(t, ctx, st.name, st.actions...)
	}
	at := location(t, ctx)
	if !strings.HasPrefix(at, c.a.url+"/reports/weekly") {
		t.Fatalf("signed in through A, landed on %q; want %s/reports/weekly", at, c.a.url)
	}
	onA := struct{ role, email, sid string }{text(t, ctx, "#role"), text(t, ctx, "#email"), text(t, ctx, "#sid")}
	if onA.role != "supervisor" || onA.email != email || onA.sid == "" {
		t.Fatalf("A's page shows role %q, email %q, session %q; want supervisor, %s and a session id", onA.role, onA.email, onA.sid, email)
	}

	do(t, ctx, "open B with the same browser", chromedp.Navigate(c.b.url+"/from-b"), chromedp.WaitVisible(chromedp.CSS(`#role, #title, #email`)))
	if at := location(t, ctx); !strings.HasPrefix(at, c.b.url+"/from-b") {
		t.Fatalf("opening %s/from-b after signing in on A went to %q; want B's page (the cookie accepted by B)", c.b.url, at)
	}
	onB := struct{ role, email, sid string }{text(t, ctx, "#role"), text(t, ctx, "#email"), text(t, ctx, "#sid")}
	if onB != onA {
		t.Errorf("B's page shows %+v; want what A showed, %+v (the same session)", onB, onA)
	}
	if got := text(t, ctx, "#path"); got != "/from-b" {
		t.Errorf("path seen by B's upstream = %q; want /from-b", got)
	}

	do(t, ctx, "log out on B",
		chromedp.Click(chromedp.CSS(`a[href="/sso/logout"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signin`)),
	)
	// The logout reaches A's cache through Redis pub/sub, which may take a
	// moment longer than the browser needs to navigate: look again until
	// A asks to sign in, for at most cache_ttl.
	loggedOut := time.Now()
	for {
		do(t, ctx, "open A after logging out on B",
			chromedp.Navigate(c.a.url+"/after-logout"),
			chromedp.WaitVisible(chromedp.CSS(`#email, #role`)),
		)
		at = location(t, ctx)
		u, err := url.Parse(at)
		if err != nil {
			t.Fatal(err)
		}
		if u.Path == "/sso/login" {
			if u.Host != strings.TrimPrefix(c.a.url, "http://") || u.Query().Get("rd") != "/after-logout" {
				t.Errorf("after logging out on B, A's page went to %q; want A's /sso/login?rd=/after-logout", at)
			}
			break
		}
		if time.Since(loggedOut) > cacheTTL {
			t.Fatalf("A still shows %q to the browser %v after it logged out on B; want A's login page within %v", at, time.Since(loggedOut), cacheTTL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do runs the actions of one step, failing t with the page it is on.
func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nat %s\n%.2000s", step, err, loc, body)
	}
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("reading the location: %v", err)
	}
	return loc
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// newBrowser starts headless Chromium for one test (see e2etest).
func newBrowser(t *testing.T) context.Context { return e2etest.NewBrowser(t) }
