package caddymodule

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// withContoso returns testCompanies with the Contoso provider changed.
func withContoso(edit func(*Provider)) func(string) []*Company {
	return func(md string) []*Company {
		cs := testCompanies(md)
		edit(cs[0].Providers[0])
		return cs
	}
}

// certificateOf downloads label's SP certificate.
func (e *testEnv) certificateOf(t *testing.T, label string) *x509.Certificate {
	t.Helper()
	res := e.get(t, "/sso/saml/"+label+"/certificate")
	if res.rec.Code != http.StatusOK {
		t.Fatalf("GET certificate = %d; want 200\n%s", res.rec.Code, res.body())
	}
	if cd := res.rec.Header().Get("Content-Disposition"); !strings.Contains(cd, label+"-engage-sso.cer") {
		t.Errorf("Content-Disposition = %q; want a .cer attachment", cd)
	}
	block, _ := pem.Decode(res.rec.Body.Bytes())
	if block == nil {
		t.Fatalf("certificate is not PEM:\n%s", res.body())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// respond posts a response to label's ACS answering a login started
// there, with o's options on top of the usual ones.
func (e *testEnv) respond(t *testing.T, label string, o samltest.ResponseOptions) result {
	t.Helper()
	ls := e.startLogin(t, label, "/x")
	o.Destination = e.app.BaseURL + "/sso/saml/" + label + "/acs"
	o.Audience = e.app.BaseURL + "/sso/saml/" + label
	o.InResponseTo = ls.requestID
	return e.postACS(t, label, samltest.Encode(e.idpFor(label).Response(t, o)), ls.relay)
}

func TestEncryptionThroughACS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{companies: withContoso(func(p *Provider) { p.Encryption = "required" })})
	cert := e.certificateOf(t, "contoso")

	// The metadata offers the same certificate for encryption.
	md := e.get(t, "/sso/saml/contoso/metadata").body()
	if !strings.Contains(md, `use="encryption"`) || !strings.Contains(md, base64.StdEncoding.EncodeToString(cert.Raw)[:60]) {
		t.Errorf("SP metadata does not offer the certificate for encryption:\n%s", md)
	}

	if res := e.respond(t, "contoso", samltest.ResponseOptions{EncryptFor: cert}); res.rec.Code != http.StatusSeeOther || res.cookie("engage_sso") == nil {
		t.Fatalf("encrypted response = %d %q; want 303 and a session\n%s", res.rec.Code, res.reason(), res.body())
	}
	res := e.respond(t, "contoso", samltest.ResponseOptions{})
	if res.rec.Code != http.StatusForbidden || res.reason() != "assertion_not_encrypted" || res.cookie("engage_sso") != nil {
		t.Errorf("plain response = %d %q; want 403 assertion_not_encrypted and no session", res.rec.Code, res.reason())
	}
	if !strings.Contains(res.body(), "token encryption") {
		t.Errorf("the page does not tell the admin what to do:\n%s", res.body())
	}
	// Fabrikam's providers have encryption off: no certificate.
	if res := e.get(t, "/sso/saml/fabrikam-a/certificate"); res.rec.Code != http.StatusNotFound || res.reason() != "no_certificate" {
		t.Errorf("certificate of a provider without encryption = %d %q; want 404 no_certificate", res.rec.Code, res.reason())
	}
	if md := e.get(t, "/sso/saml/fabrikam-a/metadata").body(); strings.Contains(md, "KeyDescriptor") {
		t.Errorf("metadata of a provider without encryption or signing has a key:\n%s", md)
	}
	res = e.respond(t, "fabrikam-a", samltest.ResponseOptions{EncryptFor: cert, User: samltest.User{ObjectID: "0b1c2d3e-0000-4000-8000-000000000009", Email: "bob@fabrikam.example", Groups: []string{groupAgent}}})
	if res.rec.Code != http.StatusForbidden || res.reason() != "encryption_not_set_up" {
		t.Errorf("encrypted response to a provider without encryption = %d %q; want 403 encryption_not_set_up", res.rec.Code, res.reason())
	}
}

func TestSignedRequestsThroughLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{companies: withContoso(func(p *Provider) { p.SignRequests = true })})
	ls := e.startLogin(t, "contoso", "/x")
	loc := ls.rec.Header().Get("Location")
	if !strings.Contains(loc, "&Signature=") || !strings.Contains(loc, "SigAlg=") {
		t.Errorf("login redirect is not signed: %s", loc)
	}
	if md := e.get(t, "/sso/saml/contoso/metadata").body(); !strings.Contains(md, `AuthnRequestsSigned="true"`) || !strings.Contains(md, `use="signing"`) {
		t.Errorf("SP metadata does not announce signed requests:\n%s", md)
	}
	e.certificateOf(t, "contoso")
}

func TestSPCertificateFiles(t *testing.T) {
	t.Parallel()
	creds, err := samlsp.GenerateCredentials(nil, "operator's own", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := creds.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "sp.crt"), filepath.Join(dir, "sp.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envConfig{companies: withContoso(func(p *Provider) {
		p.Encryption, p.SPCertFile, p.SPKeyFile = "allowed", certFile, keyFile
	})})
	if got := e.certificateOf(t, "contoso"); !got.Equal(creds.Certificate) {
		t.Errorf("the provider publishes %q; want the certificate of sp_certificate", got.Subject)
	}
	if res := e.respond(t, "contoso", samltest.ResponseOptions{EncryptFor: creds.Certificate}); res.rec.Code != http.StatusSeeOther {
		t.Errorf("response encrypted to sp_certificate = %d %q; want 303", res.rec.Code, res.reason())
	}
	if res := e.respond(t, "contoso", samltest.ResponseOptions{}); res.rec.Code != http.StatusSeeOther {
		t.Errorf("plain response with encryption allowed = %d %q; want 303", res.rec.Code, res.reason())
	}

	// A key that is not the certificate's stops the config.
	other, err := samlsp.GenerateCredentials(nil, "other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := other.MarshalPEM()
	if err := os.WriteFile(keyFile, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	app := &App{BaseURL: "http://localhost:8080", Companies: withContoso(func(p *Provider) {
		p.Encryption, p.SPCertFile, p.SPKeyFile = "required", certFile, keyFile
	})(writeMetadata(t))}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := app.Provision(ctx); err == nil || !strings.Contains(err.Error(), "does not belong to the key") {
		t.Errorf("Provision() with a mismatched sp_certificate = %v; want the mismatch named", err)
	}
}

// writeMetadata writes the test IdP's metadata and returns its path.
func writeMetadata(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "idp.xml")
	if err := os.WriteFile(f, testIdP(t).Metadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSharedSPCredentials checks that instances sharing a store agree on
// one generated SP key pair.
func TestSharedSPCredentials(t *testing.T) {
	t.Parallel()
	mem := session.NewMemory(session.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	var certs []*x509.Certificate
	for range 2 {
		a := &App{store: mem, now: time.Now}
		c, err := a.sharedSPCredentials(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c.Certificate)
	}
	if !certs[0].Equal(certs[1]) {
		t.Error("two instances on one store generated different SP certificates")
	}
}

func TestClockSkewThroughACS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{companies: withContoso(func(p *Provider) { p.ClockSkew = caddy.Duration(10 * time.Minute) })})
	ahead := e.clock.Now().Add(8 * time.Minute)
	if res := e.respond(t, "contoso", samltest.ResponseOptions{IssueInstant: ahead}); res.rec.Code != http.StatusSeeOther {
		t.Errorf("response 8m ahead with clock_skew 10m = %d %q; want 303", res.rec.Code, res.reason())
	}
	// Fabrikam keeps the default 3 minutes.
	res := e.respond(t, "fabrikam-a", samltest.ResponseOptions{IssueInstant: ahead,
		User: samltest.User{ObjectID: "0b1c2d3e-0000-4000-8000-00000000000a", Email: "bob@fabrikam.example", Groups: []string{groupAgent}}})
	if res.rec.Code != http.StatusForbidden || res.reason() != "not_yet_valid" || !strings.Contains(res.body(), "clock") {
		t.Errorf("response 8m ahead with the default skew = %d %q; want 403 not_yet_valid naming the clock\n%s", res.rec.Code, res.reason(), res.body())
	}
}

func TestMaxResponseSize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{companies: withContoso(func(p *Provider) { p.MaxResponseSize = 16 << 10 })})
	big := samltest.User{ObjectID: "0b1c2d3e-0000-4000-8000-00000000000b", Email: "alice@contoso.example"}
	for range 400 {
		big.Groups = append(big.Groups, "4f0a7c52-9d3b-4a61-8e2f-1c5b7d9e0a3f")
	}
	res := e.respond(t, "contoso", samltest.ResponseOptions{User: big})
	if res.rec.Code != http.StatusRequestEntityTooLarge || res.cookie("engage_sso") != nil {
		t.Errorf("oversized response = %d %q; want 413 and no session", res.rec.Code, res.reason())
	}
	if res := e.respond(t, "contoso", samltest.ResponseOptions{}); res.rec.Code != http.StatusSeeOther {
		t.Errorf("normal response = %d %q; want 303", res.rec.Code, res.reason())
	}
}

// TestTenantBelongsToOneCompany checks that two companies cannot trust the
// same IdP, whether the metadata is loaded at start-up or fetched later.
func TestTenantBelongsToOneCompany(t *testing.T) {
	t.Parallel()
	md := writeMetadata(t)
	cs := testCompanies(md) // Fabrikam on Contoso's tenant
	app := &App{BaseURL: "http://localhost:8080", Companies: cs}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := app.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "belongs to one company") {
		t.Fatalf("Provision() with one tenant in two companies = %v; want a refusal", err)
	}

	// Later, through metadata_url: the refresh is refused and the provider
	// keeps what it had.
	e := newEnv(t, envConfig{})
	fab := e.app.providers["fabrikam-a"]
	before := fab.sp.Load()
	if err := fab.setMetadata(e.idp.Metadata(t)); err == nil || !strings.Contains(err.Error(), `provider "contoso" of company "contoso"`) {
		t.Errorf("setMetadata(Contoso's tenant) for Fabrikam = %v; want a refusal naming Contoso", err)
	}
	if fab.sp.Load() != before {
		t.Error("the refused metadata replaced the provider's SP")
	}
	// Two providers of one company may share a tenant.
	if err := e.app.providers["fabrikam-b"].setMetadata(e.fab.Metadata(t)); err != nil {
		t.Errorf("setMetadata(Fabrikam's tenant) for Fabrikam's second provider = %v", err)
	}
}

// TestSPPreviousKey checks a certificate change: responses still encrypted
// to the old certificate decrypt with sp_previous_key, and not without.
func TestSPPreviousKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	var files [2][2]string // [old, new][cert, key]
	var certs [2]*x509.Certificate
	for i, name := range []string{"old", "new"} {
		c, err := samlsp.GenerateCredentials(nil, name, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := c.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		files[i] = [2]string{write(name+".crt", certPEM), write(name+".key", keyPEM)}
		certs[i] = c.Certificate
	}
	for _, withPrevious := range []bool{true, false} {
		e := newEnv(t, envConfig{companies: withContoso(func(p *Provider) {
			p.Encryption, p.SPCertFile, p.SPKeyFile = "required", files[1][0], files[1][1]
			if withPrevious {
				p.SPPreviousKeyFiles = []string{files[0][1]}
			}
		})})
		if got := e.certificateOf(t, "contoso"); !got.Equal(certs[1]) {
			t.Fatal("the provider does not publish the new certificate")
		}
		if res := e.respond(t, "contoso", samltest.ResponseOptions{EncryptFor: certs[1]}); res.rec.Code != http.StatusSeeOther {
			t.Errorf("response for the new certificate = %d %q; want 303", res.rec.Code, res.reason())
		}
		res := e.respond(t, "contoso", samltest.ResponseOptions{EncryptFor: certs[0]})
		switch {
		case withPrevious && res.rec.Code != http.StatusSeeOther:
			t.Errorf("response for the old certificate with sp_previous_key = %d %q; want 303", res.rec.Code, res.reason())
		case !withPrevious && (res.rec.Code != http.StatusForbidden || res.reason() != "decryption_failed"):
			t.Errorf("response for the old certificate without sp_previous_key = %d %q; want 403 decryption_failed", res.rec.Code, res.reason())
		}
	}
}
