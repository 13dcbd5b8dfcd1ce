package caddymodule

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// bob is a second user at Contoso.
var bob = samltest.User{
	ObjectID: "0b0b0b0b-2b4d-4a8e-9c3f-7d1b6e2a4c90", Email: "bob@contoso.example",
	GivenName: "Bob", Surname: "Example", Groups: samltest.DefaultUser().Groups,
}

// sloURL is the SLO endpoint of provider label.
func (e *testEnv) sloURL(label string) string {
	return e.app.BaseURL + "/sso/saml/" + label + "/slo"
}

// signIn signs user in at label through the IdP, with an assertion whose
// ID (and so SessionIndex) is assertionID, and returns the session cookie.
func (e *testEnv) signIn(t *testing.T, label string, user samltest.User, assertionID string) *http.Cookie {
	t.Helper()
	ls := e.startLogin(t, label, "")
	resp := samltest.Encode(e.idp.Response(t, samltest.ResponseOptions{
		Destination:  e.app.BaseURL + "/sso/saml/" + label + "/acs",
		Audience:     e.app.BaseURL + "/sso/saml/" + label,
		InResponseTo: ls.requestID,
		User:         user,
		AssertionID:  assertionID,
	}))
	res := e.postACS(t, label, resp, ls.relay)
	c := res.cookie(e.app.Session.CookieName)
	if res.rec.Code != http.StatusSeeOther || c == nil {
		t.Fatalf("signing in %s at %s = %d, cookie %v; want 303 and a session\n%s", user.Email, label, res.rec.Code, c, res.body())
	}
	return &http.Cookie{Name: c.Name, Value: c.Value}
}

// signedIn reports whether the session cookie c still gets through.
func (e *testEnv) signedIn(t *testing.T, c *http.Cookie) bool {
	t.Helper()
	return e.get(t, "/app", c).next != nil
}

// idpRedirect decodes the SAML message param that the response res
// redirects to the IdP's SLO endpoint with, into v.
func (e *testEnv) idpRedirect(t *testing.T, res result, param string, v any) url.Values {
	t.Helper()
	if res.rec.Code != http.StatusFound {
		t.Fatalf("status = %d; want 302 to the IdP\n%s", res.rec.Code, res.body())
	}
	loc, err := url.Parse(res.rec.Header().Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != e.idp.SSOURL {
		t.Fatalf("redirected to %s; want the IdP's SLO URL %s", got, e.idp.SSOURL)
	}
	q := loc.Query()
	deflated, err := base64.StdEncoding.DecodeString(q.Get(param))
	if err != nil {
		t.Fatalf("%s is not base64: %v", param, err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatalf("%s is not deflated: %v", param, err)
	}
	if err := xml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v\n%s", param, err, raw)
	}
	return q
}

// checkSignedOutPage checks the signed-out page: 200, the note (or none),
// and the correlation id with a log entry under it when there is a note.
func checkSignedOutPage(t *testing.T, e *testEnv, res result, note string) {
	t.Helper()
	if res.rec.Code != http.StatusOK || !strings.Contains(res.body(), "You have signed out") {
		t.Fatalf("status = %d; want 200 and the signed-out page\n%s", res.rec.Code, res.body())
	}
	if note == "" {
		if strings.Contains(res.body(), `id="note"`) {
			t.Errorf("signed-out page has a note; want none\n%s", res.body())
		}
		return
	}
	if !strings.Contains(res.body(), `id="note">`+htmlEscape(note)+`<`) {
		t.Errorf("signed-out page does not have the note %q\n%s", note, res.body())
	}
	id, _ := res.repl.GetString("http.request.uuid")
	if !strings.Contains(res.body(), `id="correlation-id">`+id+`<`) {
		t.Errorf("signed-out page does not show the correlation id %s", id)
	}
	if len(e.logsWith("correlation_id", id)) == 0 {
		t.Errorf("no log entry with correlation_id %s", id)
	}
}

// htmlEscape escapes s as html/template writes text.
func htmlEscape(s string) string {
	return strings.NewReplacer("'", "&#39;", `"`, "&#34;", "&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// spLogout signs out c at engage-sso and returns the LogoutRequest the
// browser is sent to the IdP with, and its RelayState.
func (e *testEnv) spLogout(t *testing.T, c *http.Cookie) (*crewjam.LogoutRequest, string) {
	t.Helper()
	var req crewjam.LogoutRequest
	q := e.idpRedirect(t, e.get(t, "/sso/logout", c), "SAMLRequest", &req)
	return &req, q.Get("RelayState")
}

func TestLogoutSendsLogoutRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.signIn(t, "contoso", samltest.User{}, "_assertion-alice-1")
	res := e.get(t, "/sso/logout", c)
	var req crewjam.LogoutRequest
	q := e.idpRedirect(t, res, "SAMLRequest", &req)

	if relay := q.Get("RelayState"); !session.ValidToken(relay) {
		t.Errorf("RelayState = %q; want an opaque random key", relay)
	}
	if q.Has("Signature") {
		t.Errorf("the LogoutRequest is signed; want it unsigned (the SP has no key)")
	}
	checks := []struct{ what, got, want string }{
		{"Destination", req.Destination, e.idp.SSOURL},
		{"Issuer", req.Issuer.Value, e.app.BaseURL + "/sso/saml/contoso"},
		{"NameID", req.NameID.Value, samltest.DefaultUser().Email},
		{"NameID Format", req.NameID.Format, samltest.NameIDFormatEmail},
		{"SessionIndex", req.SessionIndex.Value, "_assertion-alice-1"},
		{"Cache-Control", res.rec.Header().Get("Cache-Control"), "no-store"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("LogoutRequest %s = %q; want %q", c.what, c.got, c.want)
		}
	}
	if sc := res.cookie(e.app.Session.CookieName); sc == nil || sc.MaxAge >= 0 {
		t.Errorf("logout did not clear the session cookie: %v", sc)
	}
	if e.signedIn(t, c) {
		t.Errorf("the session still works after logout")
	}
}

func TestLogoutWithoutSingleLogout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, e *testEnv) *http.Cookie
	}{
		{"IdP without SLO endpoint", func(t *testing.T, e *testEnv) *http.Cookie {
			if err := e.app.providers["contoso"].setMetadata(e.idp.MetadataWith(t, samltest.MetadataOptions{NoSLO: true})); err != nil {
				t.Fatal(err)
			}
			return e.signIn(t, "contoso", samltest.User{}, "")
		}},
		{"session without NameID", func(t *testing.T, e *testEnv) *http.Cookie {
			tok, _ := e.newSession(t, nil)
			return e.sessionCookie(tok)
		}},
		{"no session", func(*testing.T, *testEnv) *http.Cookie { return &http.Cookie{Name: "other", Value: "x"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			c := tt.setup(t, e)
			res := e.get(t, "/sso/logout", c)
			checkSignedOutPage(t, e, res, "")
			if !strings.Contains(res.body(), "You may still be signed in") {
				t.Errorf("signed-out page does not say the user may still be signed in at the IdP\n%s", res.body())
			}
			if e.signedIn(t, c) {
				t.Errorf("the session still works after logout")
			}
		})
	}
}

// failingPendingStore fails SavePending for pending logouts.
type failingPendingStore struct{ session.Store }

func (s failingPendingStore) SavePending(ctx context.Context, key string, p *session.PendingLogin, ttl time.Duration) error {
	if strings.HasPrefix(key, pendingLogoutPrefix) {
		return errStoreDown
	}
	return s.Store.SavePending(ctx, key, p, ttl)
}

func TestLogoutSignsOutLocallyWhenSingleLogoutCannotStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.signIn(t, "contoso", samltest.User{}, "")
	e.app.store = failingPendingStore{e.app.store}
	res := e.get(t, "/sso/logout", c)
	checkSignedOutPage(t, e, res, noteIdPNotSignedOut)
	if strings.Contains(res.body(), "10.9.8.7") {
		t.Errorf("page leaks the store error\n%s", res.body())
	}
	if e.signedIn(t, c) {
		t.Errorf("the session still works after logout")
	}
}

func TestLogoutResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		options  func(o *samltest.LogoutResponseOptions, relay *string)
		unsigned bool
		note     string // "" for a confirmed logout
		reason   string // logged reason of a refused response
	}{
		{name: "success"},
		{name: "partial", options: func(o *samltest.LogoutResponseOptions, _ *string) { o.SubStatus = samlsp.StatusPartialLogout }, note: notePartial},
		{name: "IdP failed", options: func(o *samltest.LogoutResponseOptions, _ *string) { o.Status = samltest.StatusResponder }, note: noteIdPFailed},
		{name: "unsigned", unsigned: true, note: noteUnconfirmed, reason: string(samlsp.ReasonSignature)},
		{name: "other request", options: func(o *samltest.LogoutResponseOptions, _ *string) { o.InResponseTo = "id-other" }, note: noteUnconfirmed, reason: string(samlsp.ReasonRequestID)},
		{name: "unknown RelayState", options: func(_ *samltest.LogoutResponseOptions, relay *string) { *relay = newRandomToken() }, note: noteUnconfirmed, reason: string(samlsp.ReasonRequestID)},
		{name: "wrong issuer", options: func(o *samltest.LogoutResponseOptions, _ *string) { o.Issuer = "https://idp.example/" }, note: noteUnconfirmed, reason: string(samlsp.ReasonIssuer)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			c := e.signIn(t, "contoso", samltest.User{}, "")
			req, relay := e.spLogout(t, c)
			o := samltest.LogoutResponseOptions{Destination: e.sloURL("contoso"), InResponseTo: req.ID}
			if tt.options != nil {
				tt.options(&o, &relay)
			}
			query := e.idp.RedirectQuery(t, "SAMLResponse", e.idp.LogoutResponse(t, o), relay, !tt.unsigned)
			res := e.get(t, "/sso/saml/contoso/slo?"+query)
			checkSignedOutPage(t, e, res, tt.note)
			if tt.note == "" && !strings.Contains(res.body(), "You have also been signed out") {
				t.Errorf("signed-out page does not confirm the IdP logout\n%s", res.body())
			}
			if tt.reason != "" && len(e.logsWith("reason", tt.reason)) == 0 {
				t.Errorf("no log entry with reason %q; logs: %v", tt.reason, e.logs.All())
			}
			if tt.note != "" || tt.unsigned {
				return
			}
			// The pending logout is used up: the same response again is
			// not confirmed.
			checkSignedOutPage(t, e, e.get(t, "/sso/saml/contoso/slo?"+query), noteUnconfirmed)
		})
	}
}

// idpLogoutQuery is a signed HTTP-Redirect LogoutRequest from the IdP to
// label for nameID, with the given session indexes.
func (e *testEnv) idpLogoutQuery(t *testing.T, label, nameID string, sessionIndexes ...string) (query, id string) {
	t.Helper()
	id = "_logout-" + newRandomID()
	idp := e.idpFor(label)
	msg := idp.LogoutRequest(t, samltest.LogoutRequestOptions{
		Destination: e.sloURL(label), NameID: nameID, SessionIndexes: sessionIndexes, ID: id,
	})
	return idp.RedirectQuery(t, "SAMLRequest", msg, "idp-relay", true), id
}

// checkLogoutResponse checks that res answers the LogoutRequest id with
// status, echoing the IdP's RelayState.
func (e *testEnv) checkLogoutResponse(t *testing.T, res result, id, status string) {
	t.Helper()
	var resp crewjam.LogoutResponse
	q := e.idpRedirect(t, res, "SAMLResponse", &resp)
	if resp.InResponseTo != id || resp.Status.StatusCode.Value != status || q.Get("RelayState") != "idp-relay" {
		t.Errorf("LogoutResponse InResponseTo %q, status %q, RelayState %q; want %q, %q, %q",
			resp.InResponseTo, resp.Status.StatusCode.Value, q.Get("RelayState"), id, status, "idp-relay")
	}
	if resp.Destination != e.idp.SSOURL || resp.Issuer == nil || resp.Issuer.Value != e.app.BaseURL+"/sso/saml/contoso" {
		t.Errorf("LogoutResponse Destination %q, Issuer %v; want %q and the SP entityID", resp.Destination, resp.Issuer, e.idp.SSOURL)
	}
}

func TestIdPInitiatedLogout(t *testing.T) {
	t.Parallel()
	alice := samltest.DefaultUser().Email
	tests := []struct {
		name           string
		sessionIndexes []string
		wantAlice1     bool // alice's first session survives
		wantAlice2     bool
	}{
		{"every session of the user", nil, false, false},
		{"one session by SessionIndex", []string{"_alice-1"}, false, true},
		{"unknown SessionIndex ends every session", []string{"_unknown"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			alice1 := e.signIn(t, "contoso", samltest.User{}, "_alice-1")
			alice2 := e.signIn(t, "contoso", samltest.User{}, "_alice-2")
			bob1 := e.signIn(t, "contoso", bob, "_bob-1")

			query, id := e.idpLogoutQuery(t, "contoso", alice, tt.sessionIndexes...)
			e.checkLogoutResponse(t, e.get(t, "/sso/saml/contoso/slo?"+query), id, samlsp.StatusSuccess)
			if got := e.signedIn(t, alice1); got != tt.wantAlice1 {
				t.Errorf("alice's first session signed in = %v; want %v", got, tt.wantAlice1)
			}
			if got := e.signedIn(t, alice2); got != tt.wantAlice2 {
				t.Errorf("alice's second session signed in = %v; want %v", got, tt.wantAlice2)
			}
			if !e.signedIn(t, bob1) {
				t.Errorf("bob's session ended; want only alice's")
			}

			// The same request again is a replay, refused.
			if res := e.get(t, "/sso/saml/contoso/slo?"+query); res.rec.Code != http.StatusForbidden || res.reason() != string(samlsp.ReasonReplay) {
				t.Errorf("replayed LogoutRequest = %d (%q); want 403 %q", res.rec.Code, res.reason(), samlsp.ReasonReplay)
			}
		})
	}
}

func TestIdPInitiatedLogoutPost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.signIn(t, "contoso", samltest.User{}, "")
	msg := e.idp.LogoutRequest(t, samltest.LogoutRequestOptions{Destination: e.sloURL("contoso"), ID: "_post-1", Sign: true})
	res := e.postForm(t, "/sso/saml/contoso/slo", url.Values{"SAMLRequest": {samltest.Encode(msg)}, "RelayState": {"idp-relay"}})
	e.checkLogoutResponse(t, res, "_post-1", samlsp.StatusSuccess)
	if e.signedIn(t, c) {
		t.Errorf("the session still works after the IdP's LogoutRequest")
	}
}

func TestIdPInitiatedLogoutRefused(t *testing.T) {
	t.Parallel()
	alice := samltest.DefaultUser().Email
	tests := []struct {
		name   string
		target func(t *testing.T, e *testEnv) string
		post   url.Values
		status int
		reason string
	}{
		{name: "unsigned", target: func(t *testing.T, e *testEnv) string {
			msg := e.idp.LogoutRequest(t, samltest.LogoutRequestOptions{Destination: e.sloURL("contoso")})
			return "/sso/saml/contoso/slo?" + e.idp.RedirectQuery(t, "SAMLRequest", msg, "", false)
		}, status: http.StatusForbidden, reason: string(samlsp.ReasonSignature)},
		{name: "signed by another key", target: func(t *testing.T, e *testEnv) string {
			other := samltest.NewIdP(t, testTenant)
			msg := other.LogoutRequest(t, samltest.LogoutRequestOptions{Destination: e.sloURL("contoso")})
			return "/sso/saml/contoso/slo?" + other.RedirectQuery(t, "SAMLRequest", msg, "", true)
		}, status: http.StatusForbidden, reason: string(samlsp.ReasonSignature)},
		{name: "another provider's SLO URL", target: func(t *testing.T, e *testEnv) string {
			q, _ := e.idpLogoutQuery(t, "fabrikam-a", alice)
			return "/sso/saml/contoso/slo?" + q
		}, status: http.StatusForbidden, reason: string(samlsp.ReasonDestination)},
		{name: "bad base64", target: func(*testing.T, *testEnv) string {
			return "/sso/saml/contoso/slo?SAMLRequest=%25%25%25"
		}, status: http.StatusBadRequest, reason: string(samlsp.ReasonMalformed)},
		{name: "unsigned POST", target: func(*testing.T, *testEnv) string { return "/sso/saml/contoso/slo" }, post: url.Values{
			"SAMLRequest": {samltest.Encode([]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0"/>`))},
		}, status: http.StatusForbidden, reason: string(samlsp.ReasonSignature)},
		{name: "no message", target: func(*testing.T, *testEnv) string { return "/sso/saml/contoso/slo?RelayState=x" },
			status: http.StatusBadRequest, reason: string(samlsp.ReasonMalformed)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			c := e.signIn(t, "contoso", samltest.User{}, "")
			target := tt.target(t, e)
			var res result
			if tt.post != nil {
				res = e.postForm(t, target, tt.post)
			} else {
				res = e.get(t, target)
			}
			if res.rec.Code != tt.status || res.reason() != tt.reason {
				t.Fatalf("%s = %d (%q); want %d (%q)\n%s", tt.name, res.rec.Code, res.reason(), tt.status, tt.reason, res.body())
			}
			id, _ := res.repl.GetString("http.request.uuid")
			if !strings.Contains(res.body(), `id="correlation-id">`+id+`<`) || len(e.logsWith("correlation_id", id)) == 0 {
				t.Errorf("page or log lacks the correlation id %s", id)
			}
			if strings.Contains(res.body(), "refused (") || strings.Contains(res.body(), "LogoutRequest") {
				t.Errorf("page leaks the error detail\n%s", res.body())
			}
			if !strings.Contains(res.body(), "nothing was changed") {
				t.Errorf("page does not say nothing was changed\n%s", res.body())
			}
			if !e.signedIn(t, c) {
				t.Errorf("a refused LogoutRequest ended the session")
			}
		})
	}
}

// failingTakeStore fails TakePending and MarkAssertionUsed: the store is
// down after the LogoutRequest was verified.
type failingTakeStore struct {
	session.Store
	failMark bool
}

func (s failingTakeStore) TakePending(context.Context, string) (*session.PendingLogin, error) {
	return nil, errStoreDown
}

func (s failingTakeStore) MarkAssertionUsed(ctx context.Context, id string, until time.Time) (bool, error) {
	if s.failMark {
		return false, errStoreDown
	}
	return s.Store.MarkAssertionUsed(ctx, id, until)
}

func TestIdPInitiatedLogoutStoreDown(t *testing.T) {
	t.Parallel()
	for name, failMark := range map[string]bool{"index unreadable": false, "replay cache down": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			e.signIn(t, "contoso", samltest.User{}, "")
			// The SPs keep the store they were built with as replay cache.
			e.app.store = failingTakeStore{Store: e.app.store, failMark: failMark}
			if err := e.app.providers["contoso"].setMetadata(e.idp.Metadata(t)); err != nil {
				t.Fatal(err)
			}
			query, id := e.idpLogoutQuery(t, "contoso", samltest.DefaultUser().Email)
			res := e.get(t, "/sso/saml/contoso/slo?"+query)
			e.checkLogoutResponse(t, res, id, samlsp.StatusResponder)
			if n := e.logs.FilterMessage("single logout from the identity provider failed").Len(); n != 1 {
				t.Errorf("%d 'single logout from the identity provider failed' log entries; want 1", n)
			}
		})
	}
}

func TestACSFailsClosedWithoutLogoutIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ls := e.startLogin(t, "contoso", "")
	e.app.store = failingIndexStore{e.app.store}
	res := e.postACS(t, "contoso", e.samlResponse(t, "contoso", ls.requestID, samltest.User{}), ls.relay)
	checkDenied(t, e, res, http.StatusServiceUnavailable, false)
}

// failingIndexStore fails SavePending for single logout pointers.
type failingIndexStore struct{ session.Store }

func (s failingIndexStore) SavePending(ctx context.Context, key string, p *session.PendingLogin, ttl time.Duration) error {
	if strings.HasPrefix(key, sloUserPrefix) || strings.HasPrefix(key, sloSessionPrefix) {
		return errStoreDown
	}
	return s.Store.SavePending(ctx, key, p, ttl)
}

func TestSLOEndpointWithoutSingleLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	if err := e.app.providers["fabrikam-a"].setMetadata(e.fab.MetadataWith(t, samltest.MetadataOptions{NoSLO: true})); err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]int{
		"/sso/saml/fabrikam-a/slo?SAMLRequest=x": http.StatusNotFound,
		"/sso/saml/nobody/slo?SAMLRequest=x":     http.StatusNotFound,
	} {
		if res := e.get(t, target); res.rec.Code != want {
			t.Errorf("GET %s = %d; want %d", target, res.rec.Code, want)
		}
	}
	r := e.serve(t, httptest.NewRequest(http.MethodPut, "/sso/saml/contoso/slo", nil))
	if r.rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /sso/saml/contoso/slo = %d; want 405", r.rec.Code)
	}
}
