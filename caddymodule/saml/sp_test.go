package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

const (
	spEntityID    = "https://engage.example.com/sso/saml/contoso"
	spACS         = spEntityID + "/acs"
	spMetadataURL = spEntityID + "/metadata"
	// otherACS is the ACS of another provider on the same deployment.
	otherACS = "https://engage.example.com/sso/saml/fabrikam/acs"
)

// memReplay is an in-memory ReplayCache that records what it is given.
type memReplay struct {
	mu    sync.Mutex
	until map[string]time.Time
	err   error // returned by every call when set
}

func (m *memReplay) MarkAssertionUsed(ctx context.Context, id string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if m.err != nil {
		return false, m.err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until == nil {
		m.until = map[string]time.Time{}
	}
	if _, seen := m.until[id]; seen {
		return false, nil
	}
	m.until[id] = until
	return true, nil
}

// testNow is the time of the tests: 100 days from now, so that a check
// made with the real clock rather than Config.Now would fail.
func testNow() time.Time {
	return time.Now().UTC().Add(100 * 24 * time.Hour).Truncate(time.Millisecond)
}

// newTestIdP returns an IdP whose responses are issued at now.
func newTestIdP(t *testing.T, now time.Time) *samltest.IdP {
	t.Helper()
	idp := samltest.NewIdP(t, testTenant)
	idp.Now = func() time.Time { return now }
	return idp
}

// idpMetadata parses the metadata of idp.
func idpMetadata(t *testing.T, idp *samltest.IdP) *IdPMetadata {
	t.Helper()
	m, err := ParseMetadata(idp.Metadata(t))
	if err != nil {
		t.Fatalf("ParseMetadata(samltest metadata) error: %v", err)
	}
	return m
}

// testConfig returns a valid Config for an SP at time now that trusts idp.
func testConfig(t *testing.T, idp *samltest.IdP, now time.Time) Config {
	t.Helper()
	return Config{
		EntityID:    spEntityID,
		ACSURL:      spACS,
		MetadataURL: spMetadataURL,
		IdP:         idpMetadata(t, idp),
		Replay:      &memReplay{},
		Now:         func() time.Time { return now },
	}
}

func newTestSP(t *testing.T, cfg Config) *SP {
	t.Helper()
	sp, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	return sp
}

func TestNew(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	tests := []struct {
		name    string
		change  func(*Config)
		message string // "" when New must succeed
	}{
		{"valid", func(*Config) {}, ""},
		{"urn entity ID", func(c *Config) { c.EntityID = "urn:engage:contoso" }, ""},
		{"spn entity ID", func(c *Config) { c.EntityID = "spn:2b3c4d5e-6f70-4a1b-8c9d-0e1f2a3b4c5d" }, ""},
		{"loopback http", func(c *Config) { c.ACSURL = "http://localhost:8080/sso/saml/contoso/acs"; c.MetadataURL = "" }, ""},
		{"no entity ID", func(c *Config) { c.EntityID = "" }, "entity ID: empty"},
		{"relative entity ID", func(c *Config) { c.EntityID = "contoso" }, "not an absolute URI"},
		{"entity ID with space", func(c *Config) { c.EntityID = "https://engage.example.com/a b" }, "white space"},
		{"no ACS URL", func(c *Config) { c.ACSURL = "" }, "ACS URL: empty"},
		{"relative ACS URL", func(c *Config) { c.ACSURL = "/sso/saml/contoso/acs" }, "has no host"},
		{"plain http ACS URL", func(c *Config) { c.ACSURL = "http://engage.example.com/acs" }, "plain http is refused"},
		{"ACS URL with fragment", func(c *Config) { c.ACSURL = spACS + "#x" }, "fragment"},
		{"non-canonical ACS URL", func(c *Config) { c.ACSURL = "https://engage.example.com/sso/saml/a b/acs" }, "not in canonical form"},
		{"bad metadata URL", func(c *Config) { c.MetadataURL = "ftp://engage.example.com/metadata" }, "metadata URL"},
		{"no IdP", func(c *Config) { c.IdP = nil }, "no IdP metadata"},
		{"IdP without certs", func(c *Config) { m := *c.IdP; m.SigningCerts = nil; c.IdP = &m }, "no signing certificate"},
		{"IdP with nil cert", func(c *Config) { m := *c.IdP; m.SigningCerts = []*x509.Certificate{nil}; c.IdP = &m }, "signing certificate 1 is nil"},
		{"IdP without SSO", func(c *Config) { m := *c.IdP; m.SSORedirectURL = ""; c.IdP = &m }, "no SingleSignOnService"},
		{"IdP without entity ID", func(c *Config) { m := *c.IdP; m.EntityID = ""; c.IdP = &m }, "no entityID"},
		{"no replay cache", func(c *Config) { c.Replay = nil }, "no replay cache"},
		{"negative size limit", func(c *Config) { c.MaxResponseBytes = -1 }, "negative MaxResponseBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			tt.change(&cfg)
			sp, err := New(cfg)
			switch {
			case tt.message == "" && err != nil:
				t.Fatalf("New() error: %v", err)
			case tt.message == "" && sp.EntityID() != cfg.EntityID:
				t.Errorf("EntityID() = %q; want %q", sp.EntityID(), cfg.EntityID)
			case tt.message != "" && err == nil:
				t.Fatalf("New() succeeded; want an error containing %q", tt.message)
			case tt.message != "" && !strings.Contains(err.Error(), tt.message):
				t.Errorf("New() error = %q; want it to contain %q", err, tt.message)
			}
		})
	}
}

// decodeAuthnRequest decodes the SAMLRequest of an HTTP-Redirect URL.
func decodeAuthnRequest(t *testing.T, redirect string) (*crewjam.AuthnRequest, url.Values, string) {
	t.Helper()
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatalf("url.Parse(%q) error: %v", redirect, err)
	}
	q := u.Query()
	deflated, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
	if err != nil {
		t.Fatalf("SAMLRequest is not base64: %v", err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatalf("SAMLRequest is not deflated: %v", err)
	}
	var req crewjam.AuthnRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		t.Fatalf("SAMLRequest is not an AuthnRequest: %v\n%s", err, raw)
	}
	return &req, q, string(raw)
}

func TestAuthnRequestURL(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	cfg := testConfig(t, idp, now)
	cfg.Rand = bytes.NewReader(bytes.Repeat([]byte{0xab}, 20))
	sp := newTestSP(t, cfg)

	const relayState = "Zm9vYmFyYmF6cXV4"
	redirect, requestID, err := sp.AuthnRequestURL(relayState)
	if err != nil {
		t.Fatalf("AuthnRequestURL(%q) error: %v", relayState, err)
	}
	if want := "id-" + strings.Repeat("ab", 20); requestID != want {
		t.Errorf("AuthnRequestURL(%q) request ID = %q; want %q (from Config.Rand)", relayState, requestID, want)
	}
	if !strings.HasPrefix(redirect, idp.SSOURL+"?") {
		t.Errorf("AuthnRequestURL(%q) = %q; want a URL at %q", relayState, redirect, idp.SSOURL)
	}

	req, q, raw := decodeAuthnRequest(t, redirect)
	if got := q.Get("RelayState"); got != relayState {
		t.Errorf("RelayState = %q; want %q", got, relayState)
	}
	if q.Has("Signature") || q.Has("SigAlg") {
		t.Errorf("redirect %q is signed; want an unsigned request", redirect)
	}
	checks := []struct{ field, got, want string }{
		{"ID", req.ID, requestID},
		{"Destination", req.Destination, idp.SSOURL},
		{"AssertionConsumerServiceURL", req.AssertionConsumerServiceURL, spACS},
		{"ProtocolBinding", req.ProtocolBinding, crewjam.HTTPPostBinding},
		{"Version", req.Version, "2.0"},
		{"IssueInstant", req.IssueInstant.UTC().Format(time.RFC3339Nano), now.Format(time.RFC3339Nano)},
	}
	if req.Issuer == nil {
		t.Errorf("AuthnRequest has no Issuer:\n%s", raw)
	} else {
		checks = append(checks, struct{ field, got, want string }{"Issuer", req.Issuer.Value, spEntityID})
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("AuthnRequest %s = %q; want %q", c.field, c.got, c.want)
		}
	}
	// Azure applies the Format of a NameIDPolicy over the application's
	// configuration, so none is sent.
	if req.NameIDPolicy == nil || req.NameIDPolicy.Format != nil {
		t.Errorf("AuthnRequest NameIDPolicy = %+v; want one without Format", req.NameIDPolicy)
	}
}

func TestAuthnRequestURLErrors(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)

	sp := newTestSP(t, testConfig(t, idp, now))
	long := strings.Repeat("x", 81)
	if _, _, err := sp.AuthnRequestURL(long); !errors.Is(err, crewjam.ErrRelayStateTooLong) {
		t.Errorf("AuthnRequestURL(81 bytes) error = %v; want ErrRelayStateTooLong", err)
	}

	cfg := testConfig(t, idp, now)
	cfg.Rand = bytes.NewReader(nil)
	sp = newTestSP(t, cfg)
	if _, _, err := sp.AuthnRequestURL("x"); !errors.Is(err, io.EOF) {
		t.Errorf("AuthnRequestURL() with an empty Rand error = %v; want io.EOF", err)
	}
}

func TestAuthnRequestURLUniqueIDs(t *testing.T) {
	t.Parallel()
	now := testNow()
	sp := newTestSP(t, testConfig(t, newTestIdP(t, now), now))
	seen := map[string]bool{}
	for range 20 {
		_, id, err := sp.AuthnRequestURL("")
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("AuthnRequestURL() returned request ID %q twice", id)
		}
		seen[id] = true
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	now := testNow()
	sp := newTestSP(t, testConfig(t, newTestIdP(t, now), now))
	data, err := sp.Metadata()
	if err != nil {
		t.Fatalf("Metadata() error: %v", err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(data, &ed); err != nil {
		t.Fatalf("Metadata() is not an EntityDescriptor: %v\n%s", err, data)
	}
	if ed.EntityID != spEntityID {
		t.Errorf("entityID = %q; want %q", ed.EntityID, spEntityID)
	}
	if len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("metadata has %d SPSSODescriptors; want 1:\n%s", len(ed.SPSSODescriptors), data)
	}
	d := ed.SPSSODescriptors[0]
	if len(d.AssertionConsumerServices) != 1 {
		t.Fatalf("SPSSODescriptor has %d AssertionConsumerServices; want 1:\n%s", len(d.AssertionConsumerServices), data)
	}
	if acs := d.AssertionConsumerServices[0]; acs.Location != spACS || acs.Binding != crewjam.HTTPPostBinding {
		t.Errorf("AssertionConsumerService = %s at %q; want %s at %q", acs.Binding, acs.Location, crewjam.HTTPPostBinding, spACS)
	}
	if d.AuthnRequestsSigned == nil || *d.AuthnRequestsSigned {
		t.Errorf("AuthnRequestsSigned = %v; want false", d.AuthnRequestsSigned)
	}
	if d.WantAssertionsSigned == nil || !*d.WantAssertionsSigned {
		t.Errorf("WantAssertionsSigned = %v; want true", d.WantAssertionsSigned)
	}
	if len(d.KeyDescriptors) != 0 {
		t.Errorf("SPSSODescriptor has %d KeyDescriptors; want none (the SP neither signs nor decrypts)", len(d.KeyDescriptors))
	}
	if !ed.ValidUntil.After(now) {
		t.Errorf("validUntil = %v; want after Config.Now() %v", ed.ValidUntil, now)
	}
	// It is SP metadata, which ParseMetadata must refuse as IdP metadata.
	if _, err := ParseMetadata(data); !errors.Is(err, ErrNoIdPDescriptor) {
		t.Errorf("ParseMetadata(SP metadata) error = %v; want ErrNoIdPDescriptor", err)
	}
}
