package saml

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	crewjam "github.com/crewjam/saml"
)

// MaxMetadataBytes is the largest metadata document ParseMetadata and
// LoadMetadata accept. Azure AD's tenant metadata is about 22 KB.
const MaxMetadataBytes = 1 << 20

// SAML namespaces.
const (
	nsMetadata  = "urn:oasis:names:tc:SAML:2.0:metadata"
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsDSig      = "http://www.w3.org/2000/09/xmldsig#"
)

// Errors ParseMetadata and LoadMetadata return, matched with errors.Is. The
// message of the error returned says more, in words meant for the
// administrator who supplied the metadata.
var (
	// ErrMetadataEmpty reports a document with no content.
	ErrMetadataEmpty = errors.New("metadata is empty")

	// ErrMetadataTooLarge reports a document larger than MaxMetadataBytes.
	ErrMetadataTooLarge = errors.New("metadata is larger than 1 MiB")

	// ErrMetadataNotXML reports a document that is truncated or is not
	// well-formed XML.
	ErrMetadataNotXML = errors.New("metadata is truncated or not well-formed XML")

	// ErrMetadataDoctype reports a document with a DOCTYPE declaration.
	// DOCTYPEs are refused outright, since they are the vehicle of XML
	// external entity and entity expansion attacks and SAML has no use
	// for them.
	ErrMetadataDoctype = errors.New("metadata has a DOCTYPE declaration")

	// ErrNotMetadata reports a well-formed document that is not SAML
	// metadata, such as an HTML sign-in or error page.
	ErrNotMetadata = errors.New("document is not SAML metadata")

	// ErrNoIdPDescriptor reports metadata with no IDPSSODescriptor for the
	// SAML 2.0 protocol, such as service-provider metadata.
	ErrNoIdPDescriptor = errors.New("no IDPSSODescriptor: this is not identity-provider metadata")

	// ErrNoRedirectSSO reports an IDPSSODescriptor with no
	// SingleSignOnService for the HTTP-Redirect binding.
	ErrNoRedirectSSO = errors.New("no SingleSignOnService with the HTTP-Redirect binding")

	// ErrNoSigningCert reports an IDPSSODescriptor with no certificate
	// for signing.
	ErrNoSigningCert = errors.New("no signing certificate in the IDPSSODescriptor")

	// ErrInvalidCert reports a signing certificate that cannot be decoded
	// or parsed.
	ErrInvalidCert = errors.New("signing certificate is not a valid X.509 certificate")

	// ErrMetadataInvalid reports any other problem with the content of
	// otherwise well-formed metadata, such as a missing entityID or an
	// endpoint whose location is not an http(s) URL.
	ErrMetadataInvalid = errors.New("metadata is invalid")

	// ErrMetadataFetch reports that metadata could not be read from its
	// file or URL.
	ErrMetadataFetch = errors.New("cannot load metadata")
)

// metadataError is an error with a message of its own that matches one of
// the sentinel errors above and, if not nil, the error that caused it.
type metadataError struct {
	kind  error
	msg   string
	cause error
}

func (e *metadataError) Error() string { return e.msg }

func (e *metadataError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func metadataErr(kind, cause error, format string, args ...any) error {
	return &metadataError{kind: kind, msg: fmt.Sprintf(format, args...), cause: cause}
}

// IdPMetadata is what an SP needs to know about an identity provider, taken
// from its SAML metadata.
type IdPMetadata struct {
	// EntityID is the IdP's entityID, which is the Issuer of its
	// responses, e.g. https://sts.windows.net/<tenant>/.
	EntityID string

	// SSORedirectURL is the location of the SingleSignOnService with the
	// HTTP-Redirect binding, where AuthnRequests are sent.
	SSORedirectURL string

	// SSOPostURL is the location of the SingleSignOnService with the
	// HTTP-POST binding, or "" if there is none.
	SSOPostURL string

	// SLORedirectURL is the location of the SingleLogoutService with the
	// HTTP-Redirect binding, or "" if there is none.
	SLORedirectURL string

	// SigningCerts are the distinct certificates of the KeyDescriptors of
	// the IDPSSODescriptor whose use is "signing" or unset, in document
	// order. A response is trusted if it is signed with any of them, so
	// during a key rollover both the old and the new certificate work.
	SigningCerts []*x509.Certificate

	// Descriptor is the EntityDescriptor the metadata was read from, for
	// information; the SP uses only the fields above.
	Descriptor *crewjam.EntityDescriptor
}

// ParseMetadata parses SAML 2.0 identity-provider metadata, as Azure AD
// (Microsoft Entra ID) hands it out for a tenant or an enterprise
// application, and returns what an SP needs from it.
//
// It accepts a leading UTF-8 byte order mark, an EntitiesDescriptor wrapper
// (from which it takes the first EntityDescriptor with an IDPSSODescriptor,
// looking at the wrapper's own EntityDescriptors before nested wrappers),
// WS-Federation RoleDescriptors (ignored) and any number of signing
// certificates. It does not check the metadata's own signature: metadata is
// trusted because an administrator supplied it.
//
// It refuses input larger than MaxMetadataBytes and any DOCTYPE, and returns
// an error for each problem that says what is wrong in words an
// administrator can act on; the error matches one of the ErrMetadata... and
// related sentinel errors of this package with errors.Is.
func ParseMetadata(data []byte) (*IdPMetadata, error) {
	if len(data) > MaxMetadataBytes {
		return nil, metadataErr(ErrMetadataTooLarge, nil, "metadata is larger than 1 MiB (%d bytes)", len(data))
	}
	if len(bytes.TrimSpace(bytes.TrimPrefix(data, utf8BOM))) == 0 {
		return nil, ErrMetadataEmpty
	}
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return nil, metadataErr(ErrMetadataNotXML, nil, "metadata is UTF-16 encoded; save it as UTF-8")
	}

	root, err := metadataRoot(data)
	if err != nil {
		return nil, err
	}

	data = bytes.TrimPrefix(data, utf8BOM)
	var entity *crewjam.EntityDescriptor
	switch root.Local {
	case "EntityDescriptor":
		entity = new(crewjam.EntityDescriptor)
		if err := xml.Unmarshal(data, entity); err != nil {
			return nil, metadataErr(ErrMetadataInvalid, err, "metadata is invalid: %v", err)
		}
		if !hasIdPDescriptor(entity) {
			return nil, noIdPError(entity)
		}
	case "EntitiesDescriptor":
		var entities crewjam.EntitiesDescriptor
		if err := xml.Unmarshal(data, &entities); err != nil {
			return nil, metadataErr(ErrMetadataInvalid, err, "metadata is invalid: %v", err)
		}
		entity = firstIdPEntity(&entities)
		if entity == nil {
			return nil, metadataErr(ErrNoIdPDescriptor, nil, "%v (none of the entities in the EntitiesDescriptor has one)", ErrNoIdPDescriptor)
		}
	}
	return idpMetadataFrom(entity)
}

// metadataRoot checks that data is well-formed XML without a DOCTYPE whose
// root element is a SAML metadata EntityDescriptor or EntitiesDescriptor,
// and returns the root's name.
func metadataRoot(data []byte) (xml.Name, error) {
	var root xml.Name
	err := scanXML(data, func(path []xml.Name, tok xml.Token) error {
		if len(path) != 1 {
			return nil
		}
		if _, ok := tok.(xml.StartElement); !ok {
			return nil
		}
		root = path[0]
		if strings.EqualFold(root.Local, "html") {
			return errHTMLDoctype
		}
		if root.Space != nsMetadata || (root.Local != "EntityDescriptor" && root.Local != "EntitiesDescriptor") {
			if root.Space == "" {
				return metadataErr(ErrNotMetadata, nil, "document is not SAML metadata: root element is <%s>", root.Local)
			}
			return metadataErr(ErrNotMetadata, nil, "document is not SAML metadata: root element is <%s> in namespace %q", root.Local, root.Space)
		}
		return nil
	})
	var syntax *xmlSyntaxError
	switch {
	case err == nil:
		return root, nil
	case errors.Is(err, errHTMLDoctype):
		return root, metadataErr(ErrNotMetadata, nil, "document is not SAML metadata: it is an HTML page (the metadata URL may have returned a sign-in or error page)")
	case errors.Is(err, errDoctype):
		return root, metadataErr(ErrMetadataDoctype, nil, "metadata has a DOCTYPE declaration, which is refused: SAML metadata never needs one and it can carry XML entity attacks")
	case errors.Is(err, errNoRoot):
		return root, metadataErr(ErrMetadataNotXML, nil, "metadata is not XML: %s", describeStart(data))
	case errors.As(err, &syntax):
		return root, metadataErr(ErrMetadataNotXML, err, "metadata is truncated or not well-formed XML: %v", err)
	default:
		return root, err
	}
}

// describeStart says how data, which has no XML root element, begins.
func describeStart(data []byte) string {
	s := strings.TrimSpace(string(bytes.TrimPrefix(data, utf8BOM)))
	if s == "" {
		return "it has no root element"
	}
	return fmt.Sprintf("it starts with %q", truncate(s, 40))
}

// hasIdPDescriptor reports whether entity has an IDPSSODescriptor for the
// SAML 2.0 protocol.
func hasIdPDescriptor(entity *crewjam.EntityDescriptor) bool {
	return idpDescriptor(entity) != nil
}

// idpDescriptor returns the first IDPSSODescriptor of entity that supports
// the SAML 2.0 protocol, or nil.
func idpDescriptor(entity *crewjam.EntityDescriptor) *crewjam.IDPSSODescriptor {
	for i := range entity.IDPSSODescriptors {
		d := &entity.IDPSSODescriptors[i]
		for _, p := range strings.Fields(d.ProtocolSupportEnumeration) {
			if p == nsProtocol {
				return d
			}
		}
	}
	return nil
}

// noIdPError explains why entity is not usable identity-provider metadata.
func noIdPError(entity *crewjam.EntityDescriptor) error {
	switch {
	case len(entity.IDPSSODescriptors) > 0:
		return metadataErr(ErrNoIdPDescriptor, nil, "%v (the IDPSSODescriptor does not support the SAML 2.0 protocol)", ErrNoIdPDescriptor)
	case len(entity.SPSSODescriptors) > 0:
		return metadataErr(ErrNoIdPDescriptor, nil, "%v (it is service-provider metadata)", ErrNoIdPDescriptor)
	default:
		return ErrNoIdPDescriptor
	}
}

// firstIdPEntity returns the first EntityDescriptor with an
// IDPSSODescriptor in entities: its own EntityDescriptors first, then those
// of nested EntitiesDescriptors, depth first. It returns nil if there is
// none.
func firstIdPEntity(entities *crewjam.EntitiesDescriptor) *crewjam.EntityDescriptor {
	for i := range entities.EntityDescriptors {
		if hasIdPDescriptor(&entities.EntityDescriptors[i]) {
			return &entities.EntityDescriptors[i]
		}
	}
	for i := range entities.EntitiesDescriptors {
		if e := firstIdPEntity(&entities.EntitiesDescriptors[i]); e != nil {
			return e
		}
	}
	return nil
}

// idpMetadataFrom extracts what the SP needs from entity, which has an
// IDPSSODescriptor.
func idpMetadataFrom(entity *crewjam.EntityDescriptor) (*IdPMetadata, error) {
	entityID := strings.TrimSpace(entity.EntityID)
	if entityID == "" {
		return nil, metadataErr(ErrMetadataInvalid, nil, "metadata is invalid: the EntityDescriptor has no entityID")
	}
	d := idpDescriptor(entity)
	m := &IdPMetadata{
		EntityID:       entityID,
		SSORedirectURL: endpointLocation(d.SingleSignOnServices, crewjam.HTTPRedirectBinding),
		SSOPostURL:     endpointLocation(d.SingleSignOnServices, crewjam.HTTPPostBinding),
		SLORedirectURL: endpointLocation(d.SingleLogoutServices, crewjam.HTTPRedirectBinding),
		Descriptor:     entity,
	}
	if m.SSORedirectURL == "" {
		return nil, ErrNoRedirectSSO
	}

	n := 0
	for _, kd := range d.KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			n++
			cert, err := parseCertificate(c.Data)
			if err != nil {
				return nil, metadataErr(ErrInvalidCert, err, "signing certificate %d is not a valid X.509 certificate: %v", n, err)
			}
			if !containsCert(m.SigningCerts, cert) {
				m.SigningCerts = append(m.SigningCerts, cert)
			}
		}
	}
	if len(m.SigningCerts) == 0 {
		return nil, ErrNoSigningCert
	}
	return m, nil
}

// endpointLocation returns the location of the first endpoint with binding,
// or "".
func endpointLocation(endpoints []crewjam.Endpoint, binding string) string {
	for _, e := range endpoints {
		if e.Binding == binding && e.Location != "" {
			return e.Location
		}
	}
	return ""
}

// parseCertificate parses the base64 DER content of an X509Certificate
// element, ignoring white space.
func parseCertificate(b64 string) (*x509.Certificate, error) {
	b64 = strings.Join(strings.Fields(b64), "")
	if b64 == "" {
		return nil, errors.New("the X509Certificate element is empty")
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("bad base64: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("bad DER: %w", err)
	}
	return cert, nil
}

func containsCert(certs []*x509.Certificate, cert *x509.Certificate) bool {
	for _, c := range certs {
		if c.Equal(cert) {
			return true
		}
	}
	return false
}

// LoadMetadata reads a metadata document from source, a file path or an
// http(s) URL, and returns its bytes for ParseMetadata.
//
// A URL is fetched with client (http.DefaultClient if nil) under ctx, which
// carries the deadline. Metadata is what the SP trusts signing certificates
// from, so it is fetched over https only; plain http is allowed for
// loopback hosts (local development) alone, and a redirect that ends on an
// insecure URL is refused. A status other than 200 OK, or a document larger
// than MaxMetadataBytes, is an error. Errors match ErrMetadataFetch (and
// ErrMetadataTooLarge for size).
func LoadMetadata(ctx context.Context, client *http.Client, source string) ([]byte, error) {
	source = strings.TrimSpace(source)
	if source == "" {
		return nil, metadataErr(ErrMetadataFetch, nil, "cannot load metadata: no file or URL given")
	}
	if !strings.Contains(source, "://") {
		return loadMetadataFile(ctx, source)
	}
	u, err := url.Parse(source)
	if err != nil {
		return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata: invalid URL %q: %v", source, err)
	}
	if err := checkSecureURL(u); err != nil {
		return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata from %s: %v", u.Redacted(), err)
	}
	return fetchMetadata(ctx, client, u)
}

func loadMetadataFile(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata from %s: %v", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata: %v", err)
	}
	defer f.Close()
	return readLimited(f, path)
}

func fetchMetadata(ctx context.Context, client *http.Client, u *url.URL) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	where := u.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata from %s: %v", where, err)
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1")
	resp, err := client.Do(req)
	if err != nil {
		return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata from %s: %v", where, err)
	}
	defer resp.Body.Close()
	if resp.Request != nil && resp.Request.URL != nil {
		if err := checkSecureURL(resp.Request.URL); err != nil {
			return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata from %s: redirected to %s: %v", where, resp.Request.URL.Redacted(), err)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, metadataErr(ErrMetadataFetch, nil, "cannot load metadata from %s: the server answered %s", where, resp.Status)
	}
	return readLimited(resp.Body, where)
}

// readLimited reads r to the end, refusing more than MaxMetadataBytes.
func readLimited(r io.Reader, where string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxMetadataBytes+1))
	if err != nil {
		return nil, metadataErr(ErrMetadataFetch, err, "cannot load metadata from %s: %v", where, err)
	}
	if len(data) > MaxMetadataBytes {
		return nil, &metadataError{
			kind:  ErrMetadataTooLarge,
			msg:   fmt.Sprintf("cannot load metadata from %s: it is larger than 1 MiB", where),
			cause: ErrMetadataFetch,
		}
	}
	return data, nil
}

// checkSecureURL accepts https URLs, and http URLs whose host is a loopback
// address or name.
func checkSecureURL(u *url.URL) error {
	switch {
	case u.Host == "":
		return errors.New("the URL has no host")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return errors.New("plain http is refused (use https)")
	default:
		return fmt.Errorf("unsupported URL scheme %q (use https)", u.Scheme)
	}
}

// isLoopback reports whether host is localhost, a name under .localhost or a
// loopback IP address.
func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
