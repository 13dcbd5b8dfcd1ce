// Package saml is the SAML 2.0 service provider (SP) core of engage-sso: one
// SP per provider (Azure AD enterprise application). It imports IdP
// metadata, builds AuthnRequests for the HTTP-Redirect binding, publishes SP
// metadata and verifies the responses posted to the assertion consumer
// service (ACS). For single logout it builds LogoutRequests and
// LogoutResponses and verifies those the IdP sends (logout.go).
//
// It wraps the protocol core of github.com/crewjam/saml, and adds what it
// leaves to the caller: input limits and DOCTYPE refusal, a replay cache
// with context and fail-closed errors, classification of every refusal into
// a stable Reason with a message safe for users, and a clock that is a
// field rather than a package global, so SPs with different clocks can run
// side by side. It knows nothing about HTTP handlers or Caddy.
package saml

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
)

// DefaultMaxResponseBytes is the default limit on the size of a decoded
// SAMLResponse. Azure AD responses are a few kilobytes, more with many
// group claims.
const DefaultMaxResponseBytes = 256 << 10

// maxEntityIDLength is the longest entityID SAML metadata allows
// (saml-metadata-2.0-os §2.3.2).
const maxEntityIDLength = 1024

// ReplayCache remembers the IDs of the assertions that have been accepted,
// so that each is accepted only once. It must be safe for concurrent use
// and shared by every instance that serves the same ACS, so it usually
// lives in the session store.
type ReplayCache interface {
	// MarkAssertionUsed atomically records id until the given time (after
	// which the assertion is refused as expired anyway, so the record may
	// be dropped). first is false when id was already recorded. An error
	// means the check could not be made; the login is then refused.
	MarkAssertionUsed(ctx context.Context, id string, until time.Time) (first bool, err error)
}

// Config configures an SP for one provider.
type Config struct {
	// EntityID is the SP's entityID: the Azure "Identifier (Entity ID)",
	// e.g. https://engage.example.com/sso/saml/contoso. It must be an
	// absolute URI; it is the Issuer of AuthnRequests and the audience
	// assertions must be restricted to.
	EntityID string

	// ACSURL is the assertion consumer service URL, where the IdP posts
	// responses (the Azure "Reply URL"), e.g.
	// https://engage.example.com/sso/saml/contoso/acs. It must be an https
	// URL (http only for loopback hosts) written in canonical form, since
	// responses must name it exactly as their Destination and Recipient.
	ACSURL string

	// MetadataURL is where this SP's metadata is published, e.g.
	// https://engage.example.com/sso/saml/contoso/metadata. Optional; it is
	// checked like ACSURL when set.
	MetadataURL string

	// SLOURL is the SP's single logout service, where the IdP sends
	// LogoutRequests and LogoutResponses with the HTTP-Redirect binding
	// (the Azure "Logout URL"), e.g.
	// https://engage.example.com/sso/saml/contoso/slo. Optional; when set,
	// it is checked like ACSURL, the SP metadata advertises it as a
	// SingleLogoutService, and logout messages must name it exactly as
	// their Destination. Without it, single logout is off.
	SLOURL string

	// IdP is the identity provider's metadata. Only its EntityID,
	// SSORedirectURL, SSOPostURL, SLORedirectURL and SigningCerts are used.
	IdP *IdPMetadata

	// AllowIdPInitiated accepts responses that answer no AuthnRequest
	// (IdP-initiated login, e.g. Azure My Apps).
	AllowIdPInitiated bool

	// AllowSHA1 accepts responses signed with SHA-1 based algorithms
	// (older Azure apps). Off by default: such responses are refused with
	// ReasonWeakAlgorithm.
	AllowSHA1 bool

	// Credentials are the SP's own RSA key pair: the certificate is
	// published in the SP metadata, for encryption when Encryption is not
	// EncryptionOff and for signing when SignAuthnRequests is set. They are
	// required for either, and ignored otherwise.
	Credentials *Credentials

	// PreviousKeys also decrypt encrypted assertions, after Key: keep the
	// old key here while the IdP switches to a new certificate.
	PreviousKeys []*rsa.PrivateKey

	// Encryption says whether assertions are expected encrypted (Azure's
	// token encryption). The zero value, EncryptionOff, refuses encrypted
	// assertions with ReasonEncryptionNotSetUp.
	Encryption EncryptionMode

	// SignAuthnRequests signs AuthnRequests (and logout messages) with
	// the Credentials' key, RSA-SHA256, in the HTTP-Redirect binding's
	// query string; the SP metadata then says AuthnRequestsSigned="true".
	// Azure checks them when the application's "Require verification
	// certificates" is on.
	SignAuthnRequests bool

	// Replay records used assertion IDs. It is required: New fails without
	// one, so that replay protection cannot be forgotten.
	Replay ReplayCache

	// Now returns the current time. Nil means time.Now. It is the clock of
	// every time check, including the certificate validity checks of
	// signature verification.
	Now func() time.Time

	// Rand is the source of AuthnRequest IDs. Nil means crypto/rand.
	Rand io.Reader

	// ClockSkew is how far the IdP's clock may be from this SP's: dates
	// up to ClockSkew in the future are accepted, NotOnOrAfter limits are
	// extended by it, and a response may be up to 90 seconds plus whatever
	// ClockSkew exceeds 3 minutes by older than its IssueInstant. Zero
	// means DefaultClockSkew (3 minutes); at most MaxClockSkew (1 hour).
	ClockSkew time.Duration

	// MaxResponseBytes limits the size of a decoded SAMLResponse; larger
	// ones are refused before they are parsed. Zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int
}

// EncryptionMode says whether an SP expects encrypted assertions.
type EncryptionMode int

// The encryption modes.
const (
	// EncryptionOff: no encryption certificate is published and an
	// encrypted assertion is refused (ReasonEncryptionNotSetUp).
	EncryptionOff EncryptionMode = iota
	// EncryptionAllowed: the certificate is published and encrypted
	// assertions are decrypted; plain ones are accepted too. Use it while
	// switching the IdP over.
	EncryptionAllowed
	// EncryptionRequired: as EncryptionAllowed, but a plain assertion is
	// refused (ReasonNotEncrypted).
	EncryptionRequired
)

// String returns "off", "allowed" or "required".
func (m EncryptionMode) String() string {
	switch m {
	case EncryptionOff:
		return "off"
	case EncryptionAllowed:
		return "allowed"
	case EncryptionRequired:
		return "required"
	}
	return fmt.Sprintf("EncryptionMode(%d)", int(m))
}

// SP is a SAML service provider for one identity provider. It is safe for
// concurrent use.
type SP struct {
	sp        *crewjam.ServiceProvider
	entityID  string
	acsURL    url.URL
	ssoURL    string
	idpID     string // the IdP's entityID
	sloURL    string // this SP's SLO endpoint; "" when single logout is off
	idpSLOURL string // the IdP's HTTP-Redirect SLO endpoint, or ""
	replay    ReplayCache
	now       func() time.Time
	rand      io.Reader
	maxBytes  int
	allowIdP  bool
	allowSHA1 bool
	limits    timeLimits
	encrypt   EncryptionMode
	cert      *x509.Certificate // the SP's certificate, or nil
}

// New checks cfg and returns an SP for it.
func New(cfg Config) (*SP, error) {
	if err := checkEntityID(cfg.EntityID); err != nil {
		return nil, fmt.Errorf("saml: entity ID: %w", err)
	}
	acsURL, err := parseEndpointURL(cfg.ACSURL)
	if err != nil {
		return nil, fmt.Errorf("saml: ACS URL: %w", err)
	}
	var metadataURL url.URL
	if cfg.MetadataURL != "" {
		u, err := parseEndpointURL(cfg.MetadataURL)
		if err != nil {
			return nil, fmt.Errorf("saml: metadata URL: %w", err)
		}
		metadataURL = *u
	}
	var sloURL url.URL
	if cfg.SLOURL != "" {
		u, err := parseEndpointURL(cfg.SLOURL)
		if err != nil {
			return nil, fmt.Errorf("saml: SLO URL: %w", err)
		}
		sloURL = *u
	}
	if cfg.IdP == nil {
		return nil, errors.New("saml: no IdP metadata")
	}
	idpDesc, err := idpDescriptorFor(cfg.IdP)
	if err != nil {
		return nil, fmt.Errorf("saml: IdP metadata: %w", err)
	}
	if cfg.Replay == nil {
		return nil, errors.New("saml: no replay cache: assertions could be replayed")
	}
	if err := checkCredentials(cfg); err != nil {
		return nil, fmt.Errorf("saml: %w", err)
	}
	if err := checkClockSkew(cfg.ClockSkew); err != nil {
		return nil, fmt.Errorf("saml: %w", err)
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("saml: negative MaxResponseBytes %d", cfg.MaxResponseBytes)
	}

	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	random := cfg.Rand
	if random == nil {
		random = rand.Reader
	}
	maxBytes := cfg.MaxResponseBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxResponseBytes
	}

	sp := &crewjam.ServiceProvider{
		EntityID:    cfg.EntityID,
		AcsURL:      *acsURL,
		MetadataURL: metadataURL,
		IDPMetadata: idpDesc,
		// Azure honours the NameIDPolicy Format of a request over the
		// format the administrator configured for the application, and
		// ignores AllowCreate. Unspecified (sent as no Format at all)
		// leaves the choice to the administrator; Azure's default is
		// emailAddress.
		AuthnNameIDFormat: crewjam.UnspecifiedNameIDFormat,
		// Responses are accepted through the HTTP-POST binding only.
		AssertionConsumerServiceBindings: []string{crewjam.HTTPPostBinding},
		AllowIDPInitiated:                cfg.AllowIdPInitiated,
		// RelayState must not exceed 80 bytes (saml-bindings §3.4.3):
		// callers pass an opaque key, never a URL.
		LimitRelayStateLength: true,
		// SHA-1 signatures are refused unless the provider opts in (our
		// own check in ParseResponse names the reason first).
		RejectSHA1Signatures: !cfg.AllowSHA1,
		Clock:                dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: now}),
		// Replay is checked by ParseResponse after verification, with
		// the request's context (crewjam's cache interface has none).
		ReplayCache: nil,
	}
	if cfg.Encryption != EncryptionOff || cfg.SignAuthnRequests {
		sp.Key = cfg.Credentials.Key
		sp.Certificate = cfg.Credentials.Certificate
		sp.DecryptionKeys = cfg.PreviousKeys
	}
	if cfg.SignAuthnRequests {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	if cfg.SLOURL != "" {
		// Logout messages are accepted (and advertised) with the
		// HTTP-Redirect binding, the only one Azure uses for them.
		sp.SloURL = sloURL
		sp.LogoutBindings = []string{crewjam.HTTPRedirectBinding}
	}
	return &SP{
		sp:        sp,
		entityID:  cfg.EntityID,
		acsURL:    *acsURL,
		ssoURL:    cfg.IdP.SSORedirectURL,
		idpID:     cfg.IdP.EntityID,
		sloURL:    cfg.SLOURL,
		idpSLOURL: cfg.IdP.SLORedirectURL,
		replay:    cfg.Replay,
		now:       now,
		rand:      random,
		maxBytes:  maxBytes,
		allowIdP:  cfg.AllowIdPInitiated,
		allowSHA1: cfg.AllowSHA1,
		limits:    newTimeLimits(cmp.Or(cfg.ClockSkew, DefaultClockSkew)),
		encrypt:   cfg.Encryption,
		cert:      sp.Certificate,
	}, nil
}

// EntityID returns the SP's entityID.
func (sp *SP) EntityID() string { return sp.entityID }

// IdPEntityID returns the entityID of the IdP the SP trusts.
func (sp *SP) IdPEntityID() string { return sp.idpID }

// ACSURL returns the assertion consumer service URL.
func (sp *SP) ACSURL() string { return sp.acsURL.String() }

// AuthnRequestURL builds an AuthnRequest for the IdP's HTTP-Redirect
// SingleSignOnService and returns the URL to redirect the browser to, with
// relayState as its RelayState, and the request's ID. The caller stores the
// ID server-side, bound to the browser, and passes it to ParseResponse to
// check the response's InResponseTo.
//
// The request is signed in the query string when Config.SignAuthnRequests
// is set, and unsigned otherwise (Azure requires signed requests only when
// the application asks for verification certificates). It asks
// for the response at the ACS URL with the HTTP-POST binding, and has a
// NameIDPolicy without Format, so that the NameID format configured at the
// IdP applies. relayState must be at most 80 bytes.
func (sp *SP) AuthnRequestURL(relayState string) (redirect string, requestID string, err error) {
	req, err := sp.sp.MakeAuthenticationRequest(sp.ssoURL, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		return "", "", fmt.Errorf("saml: building AuthnRequest: %w", err)
	}
	// The ID comes from sp.rand rather than crewjam's package-level
	// source. It can be replaced: with the HTTP-Redirect binding the
	// signature, if any, is made over the query string by Redirect.
	if req.ID, err = newRequestID(sp.rand); err != nil {
		return "", "", fmt.Errorf("saml: building AuthnRequest: %w", err)
	}
	u, err := req.Redirect(relayState, sp.sp)
	if err != nil {
		return "", "", fmt.Errorf("saml: building AuthnRequest redirect: %w", err)
	}
	return u.String(), req.ID, nil
}

// Metadata returns the SP's metadata document: an EntityDescriptor with an
// SPSSODescriptor that has the ACS URL for the HTTP-POST binding,
// WantAssertionsSigned="true", AuthnRequestsSigned and a signing
// KeyDescriptor when Config.SignAuthnRequests is set, an encryption
// KeyDescriptor unless encryption is off, and, when
// Config.SLOURL is set, a SingleLogoutService at it for the HTTP-Redirect
// binding. It can be uploaded to Azure ("Upload metadata file") to fill in
// the Identifier, Reply URL and Logout URL.
func (sp *SP) Metadata() ([]byte, error) {
	md := sp.sp.Metadata()
	if sp.encrypt == EncryptionOff {
		// crewjam advertises an RSA signing certificate for encryption
		// too; with encryption off, the IdP must not encrypt.
		for i := range md.SPSSODescriptors {
			kds := md.SPSSODescriptors[i].KeyDescriptors[:0]
			for _, kd := range md.SPSSODescriptors[i].KeyDescriptors {
				if kd.Use != "encryption" {
					kds = append(kds, kd)
				}
			}
			md.SPSSODescriptors[i].KeyDescriptors = kds
		}
	}
	out, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("saml: encoding SP metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

// newRequestID returns a random xs:ID for an AuthnRequest: "id-" and 40 hex
// digits.
func newRequestID(r io.Reader) (string, error) {
	var b [20]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("reading random ID: %w", err)
	}
	return "id-" + hex.EncodeToString(b[:]), nil
}

// checkEntityID checks that id is an absolute URI of at most 1024
// characters, such as https://..., urn:... or spn:....
func checkEntityID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > maxEntityIDLength:
		return fmt.Errorf("longer than %d characters", maxEntityIDLength)
	case strings.TrimSpace(id) != id || strings.ContainsAny(id, " \t\r\n"):
		return fmt.Errorf("%q contains white space", id)
	}
	u, err := url.Parse(id)
	if err != nil {
		return fmt.Errorf("%q is not a URI: %w", id, err)
	}
	if u.Scheme == "" {
		return fmt.Errorf("%q is not an absolute URI", id)
	}
	return nil
}

// parseEndpointURL parses an endpoint URL of this SP: absolute, https (http
// for loopback hosts only), without a fragment, and in canonical form.
func parseEndpointURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if err := checkSecureURL(u); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return nil, fmt.Errorf("%q has a fragment", s)
	}
	if u.String() != s {
		return nil, fmt.Errorf("%q is not in canonical form (it would be written %q)", s, u.String())
	}
	return u, nil
}

// idpDescriptorFor builds the EntityDescriptor crewjam's ServiceProvider
// reads from m, so that m (not whatever else the parsed metadata held) is
// what the SP trusts.
func idpDescriptorFor(m *IdPMetadata) (*crewjam.EntityDescriptor, error) {
	if m.EntityID == "" {
		return nil, errors.New("no entityID")
	}
	if m.SSORedirectURL == "" {
		return nil, ErrNoRedirectSSO
	}
	if u, err := url.Parse(m.SSORedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("SingleSignOnService location %q is not an http(s) URL", m.SSORedirectURL)
	}
	if len(m.SigningCerts) == 0 {
		return nil, ErrNoSigningCert
	}
	keys := make([]crewjam.KeyDescriptor, 0, len(m.SigningCerts))
	for i, c := range m.SigningCerts {
		if c == nil {
			return nil, fmt.Errorf("signing certificate %d is nil", i+1)
		}
		keys = append(keys, crewjam.KeyDescriptor{
			Use: "signing",
			KeyInfo: crewjam.KeyInfo{X509Data: crewjam.X509Data{
				X509Certificates: []crewjam.X509Certificate{{Data: base64.StdEncoding.EncodeToString(c.Raw)}},
			}},
		})
	}
	sso := []crewjam.Endpoint{{Binding: crewjam.HTTPRedirectBinding, Location: m.SSORedirectURL}}
	if m.SSOPostURL != "" {
		sso = append(sso, crewjam.Endpoint{Binding: crewjam.HTTPPostBinding, Location: m.SSOPostURL})
	}
	var slo []crewjam.Endpoint
	if m.SLORedirectURL != "" {
		if u, err := url.Parse(m.SLORedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("SingleLogoutService location %q is not an http(s) URL", m.SLORedirectURL)
		}
		slo = append(slo, crewjam.Endpoint{Binding: crewjam.HTTPRedirectBinding, Location: m.SLORedirectURL})
	}
	return &crewjam.EntityDescriptor{
		EntityID: m.EntityID,
		IDPSSODescriptors: []crewjam.IDPSSODescriptor{{
			SSODescriptor: crewjam.SSODescriptor{
				RoleDescriptor: crewjam.RoleDescriptor{
					ProtocolSupportEnumeration: nsProtocol,
					KeyDescriptors:             keys,
				},
				SingleLogoutServices: slo,
			},
			SingleSignOnServices: sso,
		}},
	}, nil
}

// funcClock is a clockwork.Clock whose time is now(); its timers are those
// of the embedded real clock (crewjam and goxmldsig only read the time).
// Wrapped in a dsig.Clock it is the per-SP clock crewjam supports, instead
// of its package-level TimeNow and Clock.
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }

// Certificate returns the SP's certificate when it has one (encryption or
// request signing is on), for the IdP's administrator to upload, or nil.
func (sp *SP) Certificate() *x509.Certificate { return sp.cert }

// checkCredentials checks that the SP has a key pair when it needs one,
// and that the certificate is the key's.
func checkCredentials(cfg Config) error {
	switch cfg.Encryption {
	case EncryptionOff, EncryptionAllowed, EncryptionRequired:
	default:
		return fmt.Errorf("unknown encryption mode %d", int(cfg.Encryption))
	}
	if cfg.Encryption == EncryptionOff && !cfg.SignAuthnRequests {
		return nil
	}
	c := cfg.Credentials
	switch {
	case c == nil || c.Key == nil || c.Certificate == nil:
		return errors.New("assertion encryption and signed AuthnRequests need the SP's key and certificate")
	case !c.Key.PublicKey.Equal(c.Certificate.PublicKey):
		return errors.New("the SP certificate is not the SP key's: its public key differs")
	}
	return nil
}
