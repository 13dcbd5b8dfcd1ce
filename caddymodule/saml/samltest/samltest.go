// Package samltest builds real, signed SAML documents shaped like those of
// Azure AD (Microsoft Entra ID), for tests of SAML service providers.
//
// An IdP holds an RSA key and a self-signed certificate generated at test
// time. It writes identity-provider metadata like the Federation Metadata
// document Azure serves for an enterprise application, and responses like
// those Azure posts to an ACS: the Response element uses the samlp prefix,
// while Issuer, Assertion and Signature each declare their own default
// namespace; signatures are enveloped, RSA-SHA256 with exclusive
// canonicalization, placed right after the Issuer; only the assertion is
// signed unless asked otherwise; the NameID format is emailAddress; the
// attributes are full claim URIs in Azure's order; and the SessionIndex is
// the assertion ID.
//
//	idp := samltest.NewIdP(t, "8b966979-910b-487c-a604-69229b1ac75c")
//	md := idp.Metadata(t)
//	resp := idp.Response(t, samltest.ResponseOptions{
//		Destination:  "https://sp.example.com/acs",
//		Audience:     "https://sp.example.com",
//		InResponseTo: requestID,
//	})
//	form := url.Values{"SAMLResponse": {samltest.Encode(resp)}}
//
// For single logout it writes LogoutRequests and LogoutResponses like
// Azure's, and RedirectQuery encodes them for the HTTP-Redirect binding
// with Azure's query string signature (RSA-SHA256).
package samltest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// Azure AD claim URIs, the Names of the attributes Azure sends.
const (
	ClaimTenantID               = "http://schemas.microsoft.com/identity/claims/tenantid"
	ClaimObjectID               = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	ClaimDisplayName            = "http://schemas.microsoft.com/identity/claims/displayname"
	ClaimGroups                 = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	ClaimRole                   = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	ClaimIdentityProvider       = "http://schemas.microsoft.com/identity/claims/identityprovider"
	ClaimAuthnMethodsReferences = "http://schemas.microsoft.com/claims/authnmethodsreferences"
	ClaimGivenName              = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	ClaimSurname                = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	ClaimEmailAddress           = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	ClaimName                   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	ClaimGroupsLink             = "http://schemas.microsoft.com/claims/groups.link"
)

// SAML URIs used in the documents.
const (
	NameIDFormatEmail       = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	NameIDFormatPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	StatusSuccess           = "urn:oasis:names:tc:SAML:2.0:status:Success"
	StatusRequester         = "urn:oasis:names:tc:SAML:2.0:status:Requester"
	StatusResponder         = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	StatusRequestDenied     = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
	BindingHTTPRedirect     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	BindingHTTPPost         = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
	passwordProtectedClass  = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	bearerMethod            = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	nsMetadata              = "urn:oasis:names:tc:SAML:2.0:metadata"
	nsProtocol              = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion             = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsDSig                  = "http://www.w3.org/2000/09/xmldsig#"
	azureCertificateSubject = "Microsoft Azure Federated SSO Certificate"
)

// IdP is a test identity provider shaped like an Azure AD tenant. Its
// fields may be changed after NewIdP, before documents are made.
type IdP struct {
	// TenantID is the Azure tenant ID.
	TenantID string
	// EntityID is the IdP's entityID and the Issuer of its responses:
	// https://sts.windows.net/<tenant>/.
	EntityID string
	// SSOURL is the location of the SingleSignOnService (HTTP-Redirect and
	// HTTP-POST) and SingleLogoutService in the metadata:
	// https://login.microsoftonline.com/<tenant>/saml2.
	SSOURL string
	// Key signs responses.
	Key *rsa.PrivateKey
	// Cert is Key's self-signed certificate, valid from a year before
	// NewIdP to three years after.
	Cert *x509.Certificate
	// Now is the default IssueInstant of responses; nil means time.Now.
	Now func() time.Time
}

// NewIdP returns an IdP for tenantID with a new RSA 2048 key and a
// self-signed "CN=Microsoft Azure Federated SSO Certificate" certificate.
func NewIdP(t testing.TB, tenantID string) *IdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("samltest: generating RSA key: %v", err)
	}
	now := time.Now()
	return &IdP{
		TenantID: tenantID,
		EntityID: "https://sts.windows.net/" + tenantID + "/",
		SSOURL:   "https://login.microsoftonline.com/" + tenantID + "/saml2",
		Key:      key,
		Cert:     SelfSignedCert(t, key, now.AddDate(-1, 0, 0), now.AddDate(3, 0, 0)),
	}
}

// SelfSignedCert returns a self-signed certificate for key with Azure's
// subject, valid from notBefore to notAfter.
func SelfSignedCert(t testing.TB, key *rsa.PrivateKey, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("samltest: generating serial number: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: azureCertificateSubject},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("samltest: creating certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("samltest: parsing certificate: %v", err)
	}
	return cert
}

// MetadataOptions changes what MetadataWith writes.
type MetadataOptions struct {
	// NoBOM leaves out the UTF-8 byte order mark Azure starts with.
	NoBOM bool
	// SigningCerts are the certificates of the signing KeyDescriptors, in
	// order; nil means just the IdP's Cert. Use several to model a key
	// rollover.
	SigningCerts []*x509.Certificate
	// NoRedirectSSO leaves out the HTTP-Redirect SingleSignOnService.
	NoRedirectSSO bool
	// NoSLO leaves out the SingleLogoutService, as for an IdP without
	// single logout.
	NoSLO bool
}

// Metadata returns the IdP's metadata as Azure serves it for an enterprise
// application: a UTF-8 byte order mark, an EntityDescriptor with a
// WS-Federation RoleDescriptor, then an IDPSSODescriptor with a signing
// KeyDescriptor, SingleLogoutService (HTTP-Redirect) and
// SingleSignOnService (HTTP-Redirect and HTTP-POST) at SSOURL.
func (i *IdP) Metadata(t testing.TB) []byte {
	t.Helper()
	return i.MetadataWith(t, MetadataOptions{})
}

// MetadataWith is Metadata changed by o.
func (i *IdP) MetadataWith(t testing.TB, o MetadataOptions) []byte {
	t.Helper()
	certs := o.SigningCerts
	if certs == nil {
		certs = []*x509.Certificate{i.Cert}
	}
	keyDescriptor := func(parent *etree.Element, cert *x509.Certificate) {
		kd := parent.CreateElement("KeyDescriptor")
		kd.CreateAttr("use", "signing")
		ki := kd.CreateElement("KeyInfo")
		ki.CreateAttr("xmlns", nsDSig)
		ki.CreateElement("X509Data").CreateElement("X509Certificate").SetText(base64.StdEncoding.EncodeToString(cert.Raw))
	}

	ed := etree.NewElement("EntityDescriptor")
	ed.CreateAttr("ID", newID(t))
	ed.CreateAttr("entityID", i.EntityID)
	ed.CreateAttr("xmlns", nsMetadata)

	rd := ed.CreateElement("RoleDescriptor")
	rd.CreateAttr("xsi:type", "fed:SecurityTokenServiceType")
	rd.CreateAttr("protocolSupportEnumeration", "http://docs.oasis-open.org/wsfed/federation/200706")
	rd.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
	rd.CreateAttr("xmlns:fed", "http://docs.oasis-open.org/wsfed/federation/200706")
	for _, c := range certs {
		keyDescriptor(rd, c)
	}
	pre := rd.CreateElement("fed:PassiveRequestorEndpoint")
	epr := pre.CreateElement("wsa:EndpointReference")
	epr.CreateAttr("xmlns:wsa", "http://www.w3.org/2005/08/addressing")
	epr.CreateElement("wsa:Address").SetText("https://login.microsoftonline.com/" + i.TenantID + "/wsfed")

	idp := ed.CreateElement("IDPSSODescriptor")
	idp.CreateAttr("protocolSupportEnumeration", nsProtocol)
	for _, c := range certs {
		keyDescriptor(idp, c)
	}
	endpoint := func(tag, binding string) {
		e := idp.CreateElement(tag)
		e.CreateAttr("Binding", binding)
		e.CreateAttr("Location", i.SSOURL)
	}
	if !o.NoSLO {
		endpoint("SingleLogoutService", BindingHTTPRedirect)
	}
	if !o.NoRedirectSSO {
		endpoint("SingleSignOnService", BindingHTTPRedirect)
	}
	endpoint("SingleSignOnService", BindingHTTPPost)

	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	doc.SetRoot(ed)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatalf("samltest: writing metadata: %v", err)
	}
	if o.NoBOM {
		return out
	}
	return append([]byte{0xEF, 0xBB, 0xBF}, out...)
}

// Encode returns xml base64-encoded, as the SAMLResponse form field of
// the HTTP-POST binding carries it.
func Encode(xml []byte) string {
	return base64.StdEncoding.EncodeToString(xml)
}

// newID returns a random xs:ID shaped like Azure's: "_" and a UUID.
func newID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("samltest: generating ID: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("_%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
