package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/directory"
	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// me is what the demo upstream's /api/me says about the identity token.
type me struct {
	UserID  string `json:"user_id"`
	Email   string `json:"email"`
	Role    string `json:"role"`
	Company string `json:"company"`
	OID     string `json:"oid"`
}

func getMe(t *testing.T, e *env, cookies []*http.Cookie) me {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.gateway+"/api/me", nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m me
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/me: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func browserMe(t *testing.T, ctx context.Context, e *env) me {
	t.Helper()
	var cookies []*http.Cookie
	for _, c := range browserCookies(t, ctx, e) {
		cookies = append(cookies, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return getMe(t, e, cookies)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// deleteIfExists removes a user from the demo upstream, so a test starts
// from "no account" whatever ran before it.
func deleteIfExists(t *testing.T, e *env, company, email string) {
	t.Helper()
	u, err := e.dir.FindByEmail(ctxT(t), company, email)
	if errors.Is(err, directory.ErrNotFound) {
		return
	}
	if err != nil {
		t.Fatalf("FindByEmail(%s) = %v", email, err)
	}
	if err := e.dir.Delete(ctxT(t), u.ID); err != nil {
		t.Fatalf("Delete(%s) = %v", u.ID, err)
	}
}

// JIT on: the first sign-in creates the account in the upstream (through
// the user hook) with the role from Azure groups, and the token's sub is
// the upstream's user id; the second sign-in reuses the same account.
func TestBrowserJITCreatesTheAccountOnceAndReusesIt(t *testing.T) {
	e := startEnv(t)
	const email = "alex.wilber@contoso.com"
	deleteIfExists(t, e, "contoso", email)

	ctx := newBrowser(t)
	signIn(t, ctx, e, email, "/")
	first := browserMe(t, ctx, e)
	u, err := e.dir.FindByEmail(ctxT(t), "contoso", email)
	if err != nil {
		t.Fatalf("after the first sign-in, the upstream has no account for %s: %v", email, err)
	}
	if first.UserID != u.ID || u.ID == first.OID {
		t.Errorf("token sub = %q; want the upstream's user id %q (not the Azure oid %q)", first.UserID, u.ID, first.OID)
	}
	if u.Role != "account_holder" || !u.Active || u.ExternalID != first.OID || u.Provider != "contoso" {
		t.Errorf("created account = %+v; want active account_holder linked to oid %s via provider contoso", u, first.OID)
	}

	ctx2 := newBrowser(t)
	signIn(t, ctx2, e, email, "/")
	if second := browserMe(t, ctx2, e); second.UserID != first.UserID {
		t.Errorf("second sign-in got user id %q; want the same account %q", second.UserID, first.UserID)
	}
	users, _, err := e.dir.List(ctxT(t), "contoso", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range users {
		if x.Email == email {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d upstream accounts for %s after two sign-ins; want 1", n, email)
	}
}

// JIT off: a user without an account is refused with a page that says an
// account holder or supervisor must create it; once created, they get in.
func TestBrowserJITOffRefusesUnknownUser(t *testing.T) {
	e := startEnv(t)
	const email = "diego.siciliani@contoso.com"
	deleteIfExists(t, e, "contoso", email)

	ctx := newBrowser(t)
	signInAt(t, ctx, e, email, "/", "contoso-strict")
	if got := text(t, ctx, "#reason"); got != "no_account" {
		t.Fatalf("reason = %q; want no_account (title %q)", got, text(t, ctx, "#title"))
	}
	assertNoSession(t, ctx, e)

	created, err := e.dir.Create(ctxT(t), directory.User{Email: email, Role: "agent", Active: true, Company: "contoso", GivenName: "Diego"})
	if err != nil {
		t.Fatal(err)
	}
	ctx2 := newBrowser(t)
	signInAt(t, ctx2, e, email, "/", "contoso-strict")
	got := browserMe(t, ctx2, e)
	if got.UserID != created.ID || got.Role != "supervisor" {
		t.Errorf("after the account was created: %+v; want user %s with the role from Azure groups (supervisor)", got, created.ID)
	}
}

// The role comes from Azure at every sign-in: an account whose role is
// stale in the upstream gets the IdP's role again, in the token and in the
// upstream.
func TestBrowserRoleUpdatedAtNextLogin(t *testing.T) {
	e := startEnv(t)
	const email = "megan.bowen@contoso.com"
	ctx := newBrowser(t)
	signIn(t, ctx, e, email, "/")
	u, err := e.dir.FindByEmail(ctxT(t), "contoso", email)
	if err != nil {
		t.Fatal(err)
	}
	agent := "agent"
	if _, err := e.dir.Update(ctxT(t), u.ID, directory.Patch{Role: &agent}); err != nil {
		t.Fatal(err)
	}
	ctx2 := newBrowser(t)
	signIn(t, ctx2, e, email, "/")
	if got := text(t, ctx2, "#role"); got != "supervisor" {
		t.Errorf("role after the next sign-in = %q; want supervisor from the Azure groups", got)
	}
	if u, err = e.dir.Get(ctxT(t), u.ID); err != nil || u.Role != "supervisor" {
		t.Errorf("upstream account after the next sign-in = %+v, %v; want role supervisor", u, err)
	}
}

func (e *env) tsResponse(t *testing.T, user samltest.User) string {
	return samltest.Encode(e.tailspin.Response(t, samltest.ResponseOptions{
		Destination: e.gateway + "/sso/saml/tailspin/acs",
		Audience:    e.gateway + "/sso/saml/tailspin",
		User:        user,
	}))
}

// A user whose app role changed in the IdP gets the new role at the next
// sign-in; a deactivated account is refused; all through real signed
// responses and the real hook.
func TestACSRoleChangeAndDeactivation(t *testing.T) {
	e := startEnv(t)
	user := samltest.User{ObjectID: "7a6b5c4d-0000-4000-8000-0000000000aa", Email: "jo.pilot@tailspin.example",
		GivenName: "Jo", Surname: "Pilot", Roles: []string{"Engage.Agent"}}
	deleteIfExists(t, e, "tailspin", user.Email)

	// JIT is off for Tailspin: no account, no entry.
	r := postACS(t, e.gateway+"/sso/saml/tailspin/acs", e.tsResponse(t, user), "")
	if r.status != http.StatusForbidden || hasSessionCookie(r.cookies) || reasonRE.FindStringSubmatch(r.body)[1] != "no_account" {
		t.Fatalf("unknown user with JIT off: %d; want 403 no_account and no session", r.status)
	}
	acct, err := e.dir.Create(ctxT(t), directory.User{Email: user.Email, Role: "agent", Active: true, Company: "tailspin"})
	if err != nil {
		t.Fatal(err)
	}

	r = postACS(t, e.gateway+"/sso/saml/tailspin/acs", e.tsResponse(t, user), "")
	if r.status != http.StatusSeeOther {
		t.Fatalf("known user: %d; want 303\n%s", r.status, r.body)
	}
	if m := getMe(t, e, r.cookies); m.UserID != acct.ID || m.Role != "agent" {
		t.Errorf("first sign-in: %+v; want user %s, agent", m, acct.ID)
	}

	user.Roles = []string{"Engage.AccountHolder"} // promoted in Azure
	r = postACS(t, e.gateway+"/sso/saml/tailspin/acs", e.tsResponse(t, user), "")
	if m := getMe(t, e, r.cookies); m.Role != "account_holder" {
		t.Errorf("after the app role changed in the IdP, role = %q; want account_holder", m.Role)
	}
	if got, err := e.dir.Get(ctxT(t), acct.ID); err != nil || got.Role != "account_holder" || got.ExternalID != user.ObjectID {
		t.Errorf("upstream account = %+v, %v; want account_holder linked to the Azure oid", got, err)
	}

	if err := e.dir.Deactivate(ctxT(t), acct.ID); err != nil {
		t.Fatal(err)
	}
	r = postACS(t, e.gateway+"/sso/saml/tailspin/acs", e.tsResponse(t, user), "")
	if r.status != http.StatusForbidden || hasSessionCookie(r.cookies) || reasonRE.FindStringSubmatch(r.body)[1] != "account_disabled" {
		t.Errorf("deactivated account: %d; want 403 account_disabled and no session", r.status)
	}
}
