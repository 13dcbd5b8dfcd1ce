package devidp

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// startSSO sends an AuthnRequest from tsp to idp with the given binding and
// returns its ID and the IdP's answer.
func startSSO(t *testing.T, idp *testIdP, tsp *testSP, binding, relayState string, edit func(*saml.AuthnRequest)) (string, int, string) {
	t.Helper()
	tsp.mu.Lock()
	req, err := tsp.sp.MakeAuthenticationRequest(tsp.sp.GetSSOBindingLocation(binding), binding, saml.HTTPPostBinding)
	if err == nil && edit != nil {
		edit(req)
		if binding == saml.HTTPPostBinding && tsp.sp.SignatureMethod != "" {
			err = tsp.sp.SignAuthnRequest(req)
		}
	}
	var redirect *url.URL
	if err == nil && binding == saml.HTTPRedirectBinding {
		redirect, err = req.Redirect(relayState, tsp.sp)
	}
	tsp.mu.Unlock()
	if err != nil {
		t.Fatalf("make AuthnRequest: %v", err)
	}
	if binding == saml.HTTPRedirectBinding {
		status, body := idp.get(t, redirect.String())
		return req.ID, status, body
	}
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	buf, err := doc.WriteToBytes()
	if err != nil {
		t.Fatalf("serialize AuthnRequest: %v", err)
	}
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(buf)}, "RelayState": {relayState}}
	resp, body := idp.post(t, idp.SSOURL(), form, nil)
	return req.ID, resp.StatusCode, body
}

// signIn posts credentials to the sign-in page in body.
func signIn(t *testing.T, idp *testIdP, body, email, password string) (*http.Response, string) {
	t.Helper()
	form := url.Values{"login": {loginID(t, body)}, "email": {email}, "password": {password}}
	return idp.post(t, idp.url("/"+DemoTenantID+"/login"), form, nil)
}

func userByEmail(t *testing.T, email string) User {
	t.Helper()
	for _, u := range DemoUsers() {
		if u.Email == email {
			return u
		}
	}
	t.Fatalf("no demo user %q", email)
	return User{}
}

func TestSPInitiated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		binding string
		signed  bool
		email   string
	}{
		{"redirect", saml.HTTPRedirectBinding, false, "adele.vance@contoso.com"},
		{"signed redirect", saml.HTTPRedirectBinding, true, "diego.siciliani@contoso.com"},
		{"post", saml.HTTPPostBinding, false, "lynne.robbins@contoso.com"},
		{"signed post", saml.HTTPPostBinding, true, "Megan.Bowen@Contoso.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp, tsp := newTestPair(t, Config{})
			if tt.signed {
				tsp.update(func(sp *saml.ServiceProvider) { sp.SignatureMethod = dsig.RSASHA256SignatureMethod })
			}

			requestID, status, body := startSSO(t, idp, tsp, tt.binding, "relay-123", nil)
			if status != http.StatusOK {
				t.Fatalf("AuthnRequest status = %d; want 200; body:\n%s", status, body)
			}
			page := html.UnescapeString(body)
			for _, u := range DemoUsers() {
				for _, want := range []string{u.Email, u.Password, u.Note} {
					if !strings.Contains(page, want) {
						t.Errorf("sign-in page does not contain %q", want)
					}
				}
			}
			if !strings.Contains(page, tsp.entityID()) {
				t.Errorf("sign-in page does not name the application %q", tsp.entityID())
			}

			// Longer than crewjam lets an AuthnRequest live: the
			// request was validated when it arrived.
			idp.clock.Advance(2 * time.Minute)
			signInTime := idp.clock.Now()
			resp, body := signIn(t, idp, body, tt.email, DemoPassword)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("sign-in status = %d; want 200; body:\n%s", resp.StatusCode, body)
			}
			posted := parsePostForm(t, body)
			if got, want := posted.action, tsp.sp.AcsURL.String(); got != want {
				t.Errorf("form action = %q; want %q", got, want)
			}
			if got, want := posted.relayState, "relay-123"; got != want {
				t.Errorf("RelayState = %q; want %q", got, want)
			}

			assertion, err := tsp.sp.ParseXMLResponse(posted.xml, []string{requestID}, tsp.sp.AcsURL)
			if err != nil {
				t.Fatalf("ParseXMLResponse: %v", parseErr(err))
			}
			checkAssertion(t, idp, tsp, assertion, userByEmail(t, strings.ToLower(tt.email)), signInTime)
			checkSignedAssertionOnly(t, posted.xml)
			if !strings.Contains(string(posted.xml), `InResponseTo="`+requestID+`"`) {
				t.Errorf("Response does not answer request %q", requestID)
			}
		})
	}
}

// checkAssertion checks that assertion is Azure's for user.
func checkAssertion(t *testing.T, idp *testIdP, tsp *testSP, a *saml.Assertion, u User, now time.Time) {
	t.Helper()
	if got, want := a.Issuer.Value, idp.EntityID(); got != want {
		t.Errorf("Issuer = %q; want %q", got, want)
	}
	if got, want := a.Subject.NameID.Value, u.Email; got != want {
		t.Errorf("NameID = %q; want %q", got, want)
	}
	if got, want := a.Subject.NameID.Format, string(saml.EmailAddressNameIDFormat); got != want {
		t.Errorf("NameID Format = %q; want %q", got, want)
	}
	if len(a.AuthnStatements) != 1 || a.AuthnStatements[0].SessionIndex != a.ID {
		t.Errorf("AuthnStatements = %+v; want one with SessionIndex %q", a.AuthnStatements, a.ID)
	}
	if !a.IssueInstant.Equal(now) {
		t.Errorf("IssueInstant = %v; want %v", a.IssueInstant, now)
	}
	c := a.Conditions
	if !c.NotBefore.Equal(now.Add(-5*time.Minute)) || !c.NotOnOrAfter.Equal(now.Add(70*time.Minute)) {
		t.Errorf("Conditions = %v to %v; want %v to %v", c.NotBefore, c.NotOnOrAfter, now.Add(-5*time.Minute), now.Add(70*time.Minute))
	}
	if len(c.AudienceRestrictions) != 1 || c.AudienceRestrictions[0].Audience.Value != tsp.entityID() {
		t.Errorf("AudienceRestrictions = %+v; want %q", c.AudienceRestrictions, tsp.entityID())
	}

	type claim struct {
		name   string
		values []string
	}
	want := []claim{
		{ClaimTenantID, []string{DemoTenantID}},
		{ClaimObjectID, []string{u.ObjectID}},
		{ClaimDisplayName, []string{u.DisplayName}},
	}
	if len(u.Groups) > 0 {
		want = append(want, claim{ClaimGroups, u.Groups})
	}
	if len(u.Roles) > 0 {
		want = append(want, claim{ClaimRole, u.Roles})
	}
	want = append(want,
		claim{ClaimIdentityProvider, []string{idp.EntityID()}},
		claim{ClaimAuthnMethodsReferences, []string{AuthnMethodPassword}},
		claim{ClaimGivenName, []string{u.GivenName}},
		claim{ClaimSurname, []string{u.Surname}},
		claim{ClaimEmailAddress, []string{u.Email}},
		claim{ClaimName, []string{u.Email}},
	)
	var got []claim
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			c := claim{name: attr.Name}
			for _, v := range attr.Values {
				c.values = append(c.values, v.Value)
			}
			got = append(got, c)
		}
	}
	if !slices.EqualFunc(got, want, func(a, b claim) bool { return a.name == b.name && slices.Equal(a.values, b.values) }) {
		t.Errorf("attributes =\n%q\nwant\n%q", got, want)
	}
}

// checkSignedAssertionOnly checks that the Response is not signed and its
// one plain Assertion is, with RSA-SHA256 and exclusive c14n.
func checkSignedAssertionOnly(t *testing.T, responseXML []byte) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(responseXML); err != nil {
		t.Fatalf("parse Response: %v", err)
	}
	var assertions []*etree.Element
	for _, el := range doc.Root().ChildElements() {
		switch el.Tag {
		case "Signature":
			t.Errorf("Response is signed; want only the assertion signed")
		case "EncryptedAssertion":
			t.Errorf("assertion is encrypted; want it in the clear, as Azure by default")
		case "Assertion":
			assertions = append(assertions, el)
		}
	}
	if len(assertions) != 1 {
		t.Fatalf("%d assertions; want 1", len(assertions))
	}
	var sig *etree.Element
	for _, el := range assertions[0].ChildElements() {
		if el.Tag == "Signature" {
			sig = el
		}
	}
	if sig == nil {
		t.Fatalf("assertion is not signed")
	}
	for path, want := range map[string]string{
		"SignedInfo/SignatureMethod":        dsig.RSASHA256SignatureMethod,
		"SignedInfo/CanonicalizationMethod": dsig.CanonicalXML10ExclusiveAlgorithmId.String(),
	} {
		el := sig.FindElement(path)
		if el == nil || el.SelectAttrValue("Algorithm", "") != want {
			t.Errorf("assertion signature %s = %v; want Algorithm %q", path, el, want)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	idp, tsp := newTestPair(t, Config{})
	requestID, _, page := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "", nil)

	for _, creds := range [][2]string{
		{"adele.vance@contoso.com", "wrong"},
		{"nobody@contoso.com", DemoPassword},
		{"", ""},
	} {
		resp, body := signIn(t, idp, page, creds[0], creds[1])
		if resp.StatusCode != http.StatusOK {
			t.Errorf("sign-in(%q, %q) status = %d; want 200", creds[0], creds[1], resp.StatusCode)
		}
		if strings.Contains(body, "SAMLResponse") {
			t.Fatalf("sign-in(%q, %q) sent a SAMLResponse", creds[0], creds[1])
		}
		if !strings.Contains(body, "Your email or password is incorrect") {
			t.Errorf("sign-in(%q, %q) shows no error:\n%s", creds[0], creds[1], body)
		}
		if got, want := loginID(t, body), loginID(t, page); got != want {
			t.Errorf("sign-in(%q, %q) form token = %q; want the same %q", creds[0], creds[1], got, want)
		}
	}

	// The same page still works with the right password, once.
	resp, body := signIn(t, idp, page, "adele.vance@contoso.com", DemoPassword)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in status = %d; want 200", resp.StatusCode)
	}
	posted := parsePostForm(t, body)
	if _, err := tsp.sp.ParseXMLResponse(posted.xml, []string{requestID}, tsp.sp.AcsURL); err != nil {
		t.Fatalf("ParseXMLResponse: %v", parseErr(err))
	}
	resp, body = signIn(t, idp, page, "adele.vance@contoso.com", DemoPassword)
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "SAMLResponse") {
		t.Errorf("second sign-in with one page: status = %d; want 400 and no SAMLResponse", resp.StatusCode)
	}
}

func TestSignInErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before func(idp *testIdP, form url.Values, header http.Header)
		status int
		want   string
	}{
		{"expired page", func(idp *testIdP, _ url.Values, _ http.Header) { idp.clock.Advance(pendingLoginTTL) },
			http.StatusBadRequest, "This sign-in has expired"},
		{"unknown token", func(_ *testIdP, form url.Values, _ http.Header) { form.Set("login", "forged") },
			http.StatusBadRequest, "This sign-in has expired"},
		{"cross-site post", func(_ *testIdP, _ url.Values, h http.Header) { h.Set("Sec-Fetch-Site", "cross-site") },
			http.StatusForbidden, "Sign-in refused"},
		{"foreign origin", func(_ *testIdP, _ url.Values, h http.Header) { h.Set("Origin", "http://evil.example") },
			http.StatusForbidden, "Sign-in refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp, tsp := newTestPair(t, Config{})
			_, _, page := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "", nil)
			form := url.Values{"login": {loginID(t, page)}, "email": {"adele.vance@contoso.com"}, "password": {DemoPassword}}
			header := http.Header{}
			tt.before(idp, form, header)
			resp, body := idp.post(t, idp.url("/"+DemoTenantID+"/login"), form, header)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d; want %d", resp.StatusCode, tt.status)
			}
			if strings.Contains(body, "SAMLResponse") {
				t.Errorf("body has a SAMLResponse")
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body does not contain %q:\n%s", tt.want, body)
			}
		})
	}
}

func TestUnknownServiceProvider(t *testing.T) {
	t.Parallel()
	idp := newTestIdP(t, Config{ServiceProviders: []string{"http://127.0.0.1:1/saml/metadata"}})
	tsp := newTestSP(t, idp) // not configured in the IdP
	_, status, body := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "", nil)
	if status != http.StatusBadRequest {
		t.Errorf("status = %d; want 400", status)
	}
	body = html.UnescapeString(body)
	for _, want := range []string{"Application not found", "AADSTS700016", tsp.entityID(), "http://127.0.0.1:1/saml/metadata", "metadata unavailable"} {
		if !strings.Contains(body, want) {
			t.Errorf("error page does not contain %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `name="login"`) || strings.Contains(body, "SAMLResponse") {
		t.Errorf("error page has a sign-in or response form")
	}
}

func TestReplyURLRefresh(t *testing.T) {
	t.Parallel()
	idp, tsp := newTestPair(t, Config{})
	if got := tsp.fetches.Load(); got != 0 {
		t.Fatalf("metadata fetched %d times before any request; want 0", got)
	}

	steps := []struct {
		name        string
		acs         string // the SP's ACS path from now on; "" keeps it
		requestACS  string // the ACS URL in the request, if not the SP's
		wantStatus  int
		wantFetches int32
	}{
		{"first request fetches", "", "", http.StatusOK, 1},
		{"known SP is cached", "", "", http.StatusOK, 1},
		{"new reply URL refetches", "/saml/acs2", "", http.StatusOK, 2},
		{"unlisted reply URL refetches once", "", "http://127.0.0.1:1/elsewhere", http.StatusBadRequest, 3},
	}
	for _, step := range steps {
		if step.acs != "" {
			tsp.update(func(sp *saml.ServiceProvider) { sp.AcsURL = mustParseURL(t, tsp.baseURL+step.acs) })
		}
		var edit func(*saml.AuthnRequest)
		if step.requestACS != "" {
			edit = func(r *saml.AuthnRequest) { r.AssertionConsumerServiceURL = step.requestACS }
		}
		_, status, body := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "", edit)
		if status != step.wantStatus {
			t.Errorf("%s: status = %d; want %d; body:\n%s", step.name, status, step.wantStatus, body)
		}
		if got := tsp.fetches.Load(); got != step.wantFetches {
			t.Errorf("%s: %d metadata fetches; want %d", step.name, got, step.wantFetches)
		}
		if step.wantStatus == http.StatusBadRequest && !strings.Contains(body, "Reply URL mismatch") {
			t.Errorf("%s: error page does not say %q:\n%s", step.name, "Reply URL mismatch", body)
		}
	}
}

func TestIsPassive(t *testing.T) {
	t.Parallel()
	idp, tsp := newTestPair(t, Config{})
	passive := true
	_, status, body := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "", func(r *saml.AuthnRequest) { r.IsPassive = &passive })
	if status != http.StatusOK {
		t.Fatalf("status = %d; want 200", status)
	}
	posted := parsePostForm(t, body)
	if !strings.Contains(string(posted.xml), saml.StatusNoPassive) {
		t.Errorf("Response does not have the status %s:\n%s", saml.StatusNoPassive, posted.xml)
	}
}

func TestIDPInitiated(t *testing.T) {
	t.Parallel()
	idp, tsp := newTestPair(t, Config{})
	tsp.update(func(sp *saml.ServiceProvider) { sp.AllowIDPInitiated = true })

	status, page := idp.get(t, idp.MyAppsURL())
	if status != http.StatusOK {
		t.Fatalf("GET /myapps status = %d; want 200", status)
	}
	button := `name="sp" value="` + tsp.entityID() + `"`
	if !strings.Contains(html.UnescapeString(page), button) {
		t.Fatalf("My Apps has no button %s:\n%s", button, page)
	}

	form := func(password, sp string) url.Values {
		return url.Values{"email": {"alex.wilber@contoso.com"}, "password": {password}, "sp": {sp}, "RelayState": {"/queue"}}
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"wrong password", form("wrong", tsp.entityID()), http.StatusOK, "Your email or password is incorrect"},
		{"no application", form(DemoPassword, ""), http.StatusOK, "Choose an application"},
		{"unknown application", form(DemoPassword, "https://unknown.example/sp"), http.StatusNotFound, "Application not found"},
	}
	for _, tt := range tests {
		resp, body := idp.post(t, idp.MyAppsURL(), tt.form, nil)
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) || strings.Contains(body, "SAMLResponse") {
			t.Errorf("%s: status = %d; want %d, %q and no SAMLResponse; body:\n%s", tt.name, resp.StatusCode, tt.status, tt.want, body)
		}
	}

	resp, body := idp.post(t, idp.MyAppsURL(), form(DemoPassword, tsp.entityID()), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in status = %d; want 200; body:\n%s", resp.StatusCode, body)
	}
	posted := parsePostForm(t, body)
	if got, want := posted.relayState, "/queue"; got != want {
		t.Errorf("RelayState = %q; want %q", got, want)
	}
	if strings.Contains(string(posted.xml), "InResponseTo") {
		t.Errorf("IdP-initiated Response has an InResponseTo:\n%s", posted.xml)
	}
	assertion, err := tsp.sp.ParseXMLResponse(posted.xml, nil, tsp.sp.AcsURL)
	if err != nil {
		t.Fatalf("ParseXMLResponse: %v", parseErr(err))
	}
	checkAssertion(t, idp, tsp, assertion, userByEmail(t, "alex.wilber@contoso.com"), idp.clock.Now())
	checkSignedAssertionOnly(t, posted.xml)

	tsp.update(func(sp *saml.ServiceProvider) { sp.AllowIDPInitiated = false })
	if _, err := tsp.sp.ParseXMLResponse(posted.xml, nil, tsp.sp.AcsURL); err == nil {
		t.Errorf("ParseXMLResponse accepted an unsolicited Response with AllowIDPInitiated off; the test proves nothing")
	}
}

var scriptPattern = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

func TestResponsePageCSP(t *testing.T) {
	t.Parallel()
	idp, tsp := newTestPair(t, Config{})
	_, _, page := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "", nil)
	resp, body := signIn(t, idp, page, "adele.vance@contoso.com", DemoPassword)

	scripts := scriptPattern.FindAllStringSubmatch(body, -1)
	if len(scripts) != 1 {
		t.Fatalf("response page has %d scripts; want 1:\n%s", len(scripts), body)
	}
	sum := sha256.Sum256([]byte(scripts[0][1]))
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src "+hash) {
		t.Errorf("Content-Security-Policy = %q; want script-src %s", csp, hash)
	}
	if !strings.Contains(body, `<button type="submit" id="SAMLSubmitButton">Continue</button>`) {
		t.Errorf("response page has no visible submit button:\n%s", body)
	}
	if got := resp.Header.Get("Cache-Control"); !strings.Contains(got, "no-store") && !strings.Contains(got, "no-cache") {
		t.Errorf("Cache-Control = %q; want no caching", got)
	}
}

func TestTamperedRequestSignature(t *testing.T) {
	t.Parallel()
	idp, tsp := newTestPair(t, Config{})
	tsp.update(func(sp *saml.ServiceProvider) { sp.SignatureMethod = dsig.RSASHA256SignatureMethod })
	tsp.mu.Lock()
	req, err := tsp.sp.MakeAuthenticationRequest(idp.SSOURL(), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	var redirect *url.URL
	if err == nil {
		redirect, err = req.Redirect("relay", tsp.sp)
	}
	tsp.mu.Unlock()
	if err != nil {
		t.Fatalf("make AuthnRequest: %v", err)
	}
	q := redirect.Query()
	if q.Get("Signature") == "" {
		t.Fatalf("redirect URL %s is not signed", redirect)
	}
	q.Set("RelayState", "tampered")
	redirect.RawQuery = q.Encode()

	status, body := idp.get(t, redirect.String())
	if status != http.StatusBadRequest || !strings.Contains(body, "Invalid request signature") {
		t.Errorf("tampered request: status = %d; want 400 and %q; body:\n%s", status, "Invalid request signature", body)
	}
	if strings.Contains(body, `name="login"`) {
		t.Errorf("tampered request got a sign-in form")
	}
}

func TestUnsupportedACSBinding(t *testing.T) {
	t.Parallel()
	idp, tsp := newTestPair(t, Config{})
	var artifactIndex string
	for _, acs := range tsp.sp.Metadata().SPSSODescriptors[0].AssertionConsumerServices {
		if acs.Binding == saml.HTTPArtifactBinding {
			artifactIndex = strconv.Itoa(acs.Index)
		}
	}
	if artifactIndex == "" {
		t.Fatalf("test SP metadata has no HTTP-Artifact ACS")
	}
	_, status, body := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "", func(r *saml.AuthnRequest) {
		r.AssertionConsumerServiceURL = ""
		r.ProtocolBinding = ""
		r.AssertionConsumerServiceIndex = artifactIndex
	})
	if status != http.StatusBadRequest || !strings.Contains(body, "Unsupported request") || strings.Contains(body, `name="login"`) {
		t.Errorf("request for an HTTP-Artifact ACS: status = %d; want 400, %q and no sign-in form; body:\n%s", status, "Unsupported request", body)
	}
}

// TestEncryptFor checks token encryption for an SP named in EncryptFor: the
// assertion arrives encrypted the way Azure encrypts (AES-256-CBC, RSA-OAEP)
// and decrypts to the signed assertion.
func TestEncryptFor(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	spURL := "http://" + ln.Addr().String() + "/saml/metadata"
	idp := newTestIdP(t, Config{ServiceProviders: []string{spURL}, EncryptFor: []string{spURL}})
	tsp := startTestSP(t, idp, ln)

	requestID, status, body := startSSO(t, idp, tsp, saml.HTTPRedirectBinding, "relay", nil)
	if status != http.StatusOK {
		t.Fatalf("AuthnRequest status = %d\n%s", status, body)
	}
	resp, body := signIn(t, idp, body, "adele.vance@contoso.com", DemoPassword)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in status = %d\n%s", resp.StatusCode, body)
	}
	posted := parsePostForm(t, body)
	for _, want := range []string{"EncryptedAssertion", "http://www.w3.org/2001/04/xmlenc#aes256-cbc", "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"} {
		if !strings.Contains(string(posted.xml), want) {
			t.Errorf("response lacks %s", want)
		}
	}
	if strings.Contains(string(posted.xml), "adele.vance@contoso.com") {
		t.Error("the user's email is readable in the encrypted response")
	}
	assertion, err := tsp.sp.ParseXMLResponse(posted.xml, []string{requestID}, tsp.sp.AcsURL)
	if err != nil {
		t.Fatalf("ParseXMLResponse: %v", parseErr(err))
	}
	if assertion.Subject == nil || assertion.Subject.NameID == nil || assertion.Subject.NameID.Value != "adele.vance@contoso.com" {
		t.Errorf("decrypted assertion subject = %+v; want adele.vance@contoso.com", assertion.Subject)
	}
}
