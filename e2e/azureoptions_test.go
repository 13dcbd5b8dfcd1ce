package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// Wingtip: a company whose Azure app encrypts its tokens, whose server
// clock is allowed 10 minutes of skew, and whose users are in so many
// groups that their role comes from Microsoft Graph.
const (
	wingtipTenant         = "6b5a4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
	wingtipAgents         = "1a1a1a1a-0000-4000-8000-00000000a001"
	wingtipSupervisors    = "1a1a1a1a-0000-4000-8000-00000000a002"
	wingtipAccountHolders = "1a1a1a1a-0000-4000-8000-00000000a003"
	wingtipGraphClient    = "2b2b2b2b-0000-4000-8000-00000000b001"
	wingtipGraphSecret    = "e2e~graph-secret-never-shown"
)

func (e *env) wtACS() string { return e.gateway + "/sso/saml/wingtip/acs" }

// wingtipCertificate downloads the Wingtip provider's certificate from the
// gateway, as an Azure admin does for token encryption.
func (e *env) wingtipCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	resp, err := http.Get(e.gateway + "/sso/saml/wingtip/certificate")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET certificate = %d\n%s", resp.StatusCode, body)
	}
	block, _ := pem.Decode(body)
	if block == nil {
		t.Fatalf("certificate is not PEM: %s", body)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// wtResponse is an IdP-initiated response from Wingtip's IdP for user,
// encrypted to the gateway's certificate unless plain.
func (e *env) wtResponse(t *testing.T, user samltest.User, plain bool, at time.Time) string {
	t.Helper()
	o := samltest.ResponseOptions{
		Destination: e.wtACS(), Audience: e.gateway + "/sso/saml/wingtip",
		User: user, IssueInstant: at,
	}
	if !plain {
		o.EncryptFor = e.wingtipCertificate(t)
	}
	return samltest.Encode(e.wingtip.Response(t, o))
}

func TestWingtipEncryptedAndOverage(t *testing.T) {
	e := startEnv(t)
	now := time.Now()

	t.Run("encrypted assertion, 8 minutes ahead", func(t *testing.T) {
		u := samltest.User{ObjectID: "3c3c3c3c-0000-4000-8000-00000000c001", Email: "ana@wingtip.example", GivenName: "Ana", Surname: "Ahead",
			Groups: []string{wingtipAgents}}
		res := postACS(t, e.wtACS(), e.wtResponse(t, u, false, now.Add(8*time.Minute)), "")
		if res.status != http.StatusSeeOther || !hasSessionCookie(res.cookies) {
			t.Fatalf("encrypted response = %d; want 303 and a session\n%s", res.status, res.body)
		}
	})

	t.Run("plain assertion refused", func(t *testing.T) {
		u := samltest.User{ObjectID: "3c3c3c3c-0000-4000-8000-00000000c002", Email: "pat@wingtip.example", Groups: []string{wingtipAgents}}
		res := postACS(t, e.wtACS(), e.wtResponse(t, u, true, now), "")
		m := reasonRE.FindStringSubmatch(res.body)
		if res.status != http.StatusForbidden || hasSessionCookie(res.cookies) || m == nil || m[1] != "assertion_not_encrypted" {
			t.Fatalf("plain response = %d; want 403 assertion_not_encrypted and no session\n%s", res.status, res.body)
		}
		c := correlationRE.FindStringSubmatch(res.body)
		if c == nil || len(e.logLines(t, c[1])) == 0 {
			t.Errorf("the refusal's correlation id is not in Caddy's log:\n%s", res.body)
		}
	})

	t.Run("group overage resolved through Graph", func(t *testing.T) {
		const oid = "3c3c3c3c-0000-4000-8000-00000000c003"
		e.graph.SetGroups(oid, "9f9f9f9f-0000-4000-8000-000000000001", wingtipAccountHolders, wingtipAgents)
		u := samltest.User{ObjectID: oid, Email: "olga@wingtip.example", GivenName: "Olga", Surname: "Overage", Overage: true}
		res := postACS(t, e.wtACS(), e.wtResponse(t, u, false, now), "")
		if res.status != http.StatusSeeOther || !hasSessionCookie(res.cookies) {
			t.Fatalf("overage response = %d; want 303 and a session\n%s", res.status, res.body)
		}
		// The upstream sees the role Graph's groups map to.
		if me := getMe(t, e, res.cookies); me.Email != "olga@wingtip.example" || me.Role != "account_holder" || me.Company != "wingtip" {
			t.Errorf("GET /api/me = %+v; want olga@wingtip.example, account_holder at wingtip", me)
		}
		var signedIn bool
		for _, l := range e.logLines(t, `"olga@wingtip.example"`) {
			signedIn = signedIn || (strings.Contains(l, `"signed in"`) && strings.Contains(l, `"role":"account_holder"`))
			if strings.Contains(l, wingtipGraphSecret) {
				t.Errorf("Caddy's log carries the Graph client secret: %s", l)
			}
		}
		if !signedIn {
			t.Errorf("no 'signed in' log line with role account_holder for the overage user")
		}
		if tok, graphCalls := e.graph.Calls(); tok == 0 || graphCalls == 0 {
			t.Errorf("Graph calls = %d token, %d groups; want both used", tok, graphCalls)
		}
	})
}

// TestStrictProviderSignsAndRequiresEncryption checks the contoso-strict
// provider's Azure options as the dev IdP sees them: its AuthnRequests
// carry a signature and its metadata offers an encryption certificate.
// (The browser sign-ins through it, TestBrowserJITOffRefusesUnknownUser,
// succeed only if the dev IdP verified that signature, as crewjam's IdP
// does for an SP whose metadata says AuthnRequestsSigned, and encrypted
// the assertion, since the provider refuses plain ones.)
func TestStrictProviderSignsAndRequiresEncryption(t *testing.T) {
	e := startEnv(t)
	resp, err := noRedirect.Get(e.gateway + "/sso/login/contoso-strict")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, e.idp) || !strings.Contains(loc, "&Signature=") {
		t.Errorf("GET /sso/login/contoso-strict = %d to %s; want a signed redirect to the dev IdP", resp.StatusCode, loc)
	}
	md, err := http.Get(e.gateway + "/sso/saml/contoso-strict/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(md.Body)
	md.Body.Close()
	for _, want := range []string{`AuthnRequestsSigned="true"`, `use="encryption"`, `use="signing"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("contoso-strict SP metadata lacks %s", want)
		}
	}

	// The dev IdP refuses the request once its signature is broken.
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sig := []byte(q.Get("Signature"))
	sig[10] ^= 1
	q.Set("Signature", string(sig))
	u.RawQuery = q.Encode()
	bad, err := noRedirect.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode < 400 {
		t.Errorf("the dev IdP answered %d to an AuthnRequest with a broken signature; want a refusal", bad.StatusCode)
	}
}
