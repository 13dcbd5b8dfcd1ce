package saml

import (
	"bytes"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
)

// Severity is how much a Finding matters.
type Severity int

// Severities of findings, from the least to the most serious.
const (
	// SeverityInfo is worth knowing but needs no action.
	SeverityInfo Severity = iota
	// SeverityWarning is a problem that does not stop the metadata from being
	// used now but probably will, such as an expired certificate.
	SeverityWarning
	// SeverityError is a problem that stops the metadata from being used.
	SeverityError
)

// String returns "info", "warning" or "error".
func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	default:
		return fmt.Sprintf("Severity(%d)", int(s))
	}
}

// Codes of the findings ValidateMetadata reports. They are stable, for
// programs; the Message of a Finding is for people.
const (
	CodeEmpty            = "empty"              // error: no content
	CodeTooLarge         = "too-large"          // error: larger than MaxMetadataBytes
	CodeTruncated        = "truncated"          // error: the XML ends too early
	CodeNotXML           = "not-xml"            // error: not well-formed XML
	CodeDoctype          = "doctype"            // error: a DOCTYPE declaration
	CodeNotMetadata      = "not-metadata"       // error: XML, but not SAML metadata
	CodeNoIdPDescriptor  = "no-idp-descriptor"  // error: no SAML 2.0 IDPSSODescriptor
	CodeInvalid          = "invalid"            // error: other invalid content
	CodeNoEntityID       = "no-entity-id"       // error: the EntityDescriptor has no entityID
	CodeNotAzure         = "not-azure"          // info: the entityID is not Azure AD's
	CodeNoRedirectSSO    = "no-redirect-sso"    // error: no HTTP-Redirect SingleSignOnService
	CodeNoPostSSO        = "no-post-sso"        // info: no HTTP-POST SingleSignOnService
	CodeNoSigningCert    = "no-signing-cert"    // error: no signing certificate
	CodeInvalidCert      = "invalid-cert"       // error: a signing certificate cannot be read
	CodeCertExpired      = "cert-expired"       // warning: a signing certificate has expired
	CodeCertNotYetValid  = "cert-not-yet-valid" // warning: a signing certificate is not valid yet
	CodeUnsigned         = "unsigned"           // info: the metadata has no signature
	CodeSignatureValid   = "signature-valid"    // info: the metadata's signature verifies
	CodeSignatureInvalid = "signature-invalid"  // error: the metadata's signature does not verify
	CodeSignerUnknown    = "signer-unknown"     // warning: signed by a certificate the metadata does not list
)

// Finding is one observation ValidateMetadata makes about a metadata
// document.
type Finding struct {
	// Severity says how much the finding matters.
	Severity Severity
	// Code identifies the kind of finding: one of the Code... constants.
	Code string
	// Message says what was found and what to do about it, in sentences
	// meant for the administrator of the Azure AD application.
	Message string
}

// String returns the finding as "severity: message".
func (f Finding) String() string {
	return f.Severity.String() + ": " + f.Message
}

// Findings are the findings about one document, in the order they were
// made.
type Findings []Finding

// OK reports whether no finding is an Error, in which case the metadata
// can be used.
func (fs Findings) OK() bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return false
		}
	}
	return true
}

// Has reports whether some finding has the given code.
func (fs Findings) Has(code string) bool {
	for _, f := range fs {
		if f.Code == code {
			return true
		}
	}
	return false
}

func (fs *Findings) add(s Severity, code, format string, args ...any) {
	*fs = append(*fs, Finding{Severity: s, Code: code, Message: fmt.Sprintf(format, args...)})
}

// azureEntityID matches the entityID of an Azure AD (Microsoft Entra ID)
// tenant.
var azureEntityID = regexp.MustCompile(`^https://sts\.windows\.net/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/$`)

// dateFormat is how findings write dates.
const dateFormat = "2 January 2006"

// ValidateMetadata checks an identity-provider metadata document, as an
// administrator downloaded it from Azure AD, and reports everything worth
// telling them about it, at time now.
//
// It agrees with ParseMetadata, on which it builds: the findings have an
// Error with a code other than CodeSignatureInvalid exactly when
// ParseMetadata refuses data. Beyond what ParseMetadata checks, it reports
// signing certificates that have expired or are not yet valid (warnings),
// a missing HTTP-POST SingleSignOnService and an entityID that is not an
// Azure AD tenant's (information), and checks the metadata's own enveloped
// signature, if any, with the certificate of its KeyInfo: a signature that
// does not verify is an Error, since the document has been changed since
// it was signed, even though ParseMetadata, which does not check it,
// accepts the document.
func ValidateMetadata(data []byte, now time.Time) Findings {
	var fs Findings
	m, err := ParseMetadata(data)
	if err != nil && !errors.Is(err, ErrNoRedirectSSO) && !errors.Is(err, ErrNoSigningCert) && !errors.Is(err, ErrInvalidCert) && !errors.Is(err, ErrMetadataInvalid) {
		// A problem with the document as a whole: nothing else can be
		// checked.
		fs = append(fs, parseFinding(err, data))
		return fs
	}

	var entity *crewjam.EntityDescriptor
	if m != nil {
		entity = m.Descriptor
	} else {
		entity = metadataEntity(data)
	}
	var certs []*x509.Certificate
	if entity != nil {
		certs = checkEntity(&fs, entity, now)
	}
	if err != nil && fs.OK() {
		// Whatever made ParseMetadata refuse the document, it is an Error.
		fs = append(Findings{parseFinding(err, data)}, fs...)
	}
	checkSignature(&fs, data, certs)
	return fs
}

// parseFinding turns an error of ParseMetadata into a Finding.
func parseFinding(err error, data []byte) Finding {
	f := Finding{Severity: SeverityError, Code: CodeInvalid}
	var syntax *xmlSyntaxError
	switch {
	case errors.Is(err, ErrMetadataEmpty):
		f.Code = CodeEmpty
		f.Message = "The file is empty: Azure sometimes hands out an empty Federation Metadata XML on the first download; download it again."
	case errors.Is(err, ErrMetadataTooLarge):
		f.Code = CodeTooLarge
		f.Message = fmt.Sprintf("The file is %d bytes, larger than the 1 MiB allowed; Azure AD metadata is about 20 KB, so this is not the Federation Metadata XML.", len(data))
	case errors.Is(err, ErrMetadataNotXML) && errors.As(err, &syntax) && strings.Contains(syntax.msg, "EOF"):
		f.Code = CodeTruncated
		f.Message = fmt.Sprintf("The file is cut short (%v): Azure sometimes hands out an incomplete Federation Metadata XML on the first download; download it again.", err)
	case errors.Is(err, ErrMetadataNotXML):
		f.Code = CodeNotXML
		f.Message = fmt.Sprintf("The file is not XML (%v); download the Federation Metadata XML again from the SAML Certificates section of the application's single sign-on page.", err)
	case errors.Is(err, ErrMetadataDoctype):
		f.Code = CodeDoctype
		f.Message = "The file has a DOCTYPE declaration, which is refused because it can carry XML entity attacks; Azure never sends one, so download the Federation Metadata XML again from Azure."
	case errors.Is(err, ErrNotMetadata):
		f.Code = CodeNotMetadata
		f.Message = fmt.Sprintf("The file is not SAML metadata (%v); if it is an HTML page, a sign-in or error page was saved instead of the Federation Metadata XML: download it again from the application's single sign-on page.", err)
	case errors.Is(err, ErrNoIdPDescriptor):
		f.Code = CodeNoIdPDescriptor
		f.Message = fmt.Sprintf("The file is not identity-provider metadata (%v); use the Federation Metadata XML of the Azure AD enterprise application, not this service's own metadata.", err)
	case errors.Is(err, ErrNoRedirectSSO):
		f.Code = CodeNoRedirectSSO
		f.Message = "The metadata has no sign-on URL for the HTTP-Redirect binding, which this service sends users to; Azure AD metadata always has one, so download it again from Azure."
	case errors.Is(err, ErrNoSigningCert):
		f.Code = CodeNoSigningCert
		f.Message = "The metadata has no signing certificate, so no response could be trusted; download the Federation Metadata XML again from Azure."
	case errors.Is(err, ErrInvalidCert):
		f.Code = CodeInvalidCert
		f.Message = fmt.Sprintf("A signing certificate cannot be read (%v); the file may have been edited by hand: download it again from Azure.", err)
	default:
		f.Message = fmt.Sprintf("The metadata is invalid (%v); download the Federation Metadata XML again from Azure.", err)
	}
	return f
}

// metadataEntity returns the EntityDescriptor ParseMetadata reads from data,
// or nil if there is none. It chooses the same one as ParseMetadata.
func metadataEntity(data []byte) *crewjam.EntityDescriptor {
	if len(data) > MaxMetadataBytes {
		return nil
	}
	root, err := metadataRoot(data)
	if err != nil {
		return nil
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	switch root.Local {
	case "EntityDescriptor":
		entity := new(crewjam.EntityDescriptor)
		if xml.Unmarshal(data, entity) != nil || !hasIdPDescriptor(entity) {
			return nil
		}
		return entity
	case "EntitiesDescriptor":
		var entities crewjam.EntitiesDescriptor
		if xml.Unmarshal(data, &entities) != nil {
			return nil
		}
		return firstIdPEntity(&entities)
	}
	return nil
}

// checkEntity adds the findings about entity, which has an
// IDPSSODescriptor, to fs, and returns its valid signing certificates. Its
// Errors are those of idpMetadataFrom, each reported rather than only the
// first.
func checkEntity(fs *Findings, entity *crewjam.EntityDescriptor, now time.Time) []*x509.Certificate {
	entityID := strings.TrimSpace(entity.EntityID)
	switch {
	case entityID == "":
		fs.add(SeverityError, CodeNoEntityID, "The metadata has no entityID, the identity provider's name; download the Federation Metadata XML again from Azure.")
	case !azureEntityID.MatchString(entityID):
		fs.add(SeverityInfo, CodeNotAzure, "The entityID %q is not that of an Azure AD tenant (https://sts.windows.net/<tenant ID>/), so this is not Azure AD; other identity providers are allowed.", truncate(entityID, 200))
	}

	d := idpDescriptor(entity)
	if d == nil {
		return nil
	}
	if endpointLocation(d.SingleSignOnServices, crewjam.HTTPRedirectBinding) == "" {
		fs.add(SeverityError, CodeNoRedirectSSO, "The metadata has no sign-on URL for the HTTP-Redirect binding, which this service sends users to; Azure AD metadata always has one, so download it again from Azure.")
	}
	if endpointLocation(d.SingleSignOnServices, crewjam.HTTPPostBinding) == "" {
		fs.add(SeverityInfo, CodeNoPostSSO, "The metadata has no sign-on URL for the HTTP-POST binding; this service does not need one.")
	}

	var certs []*x509.Certificate
	n, invalid := 0, 0
	for _, kd := range d.KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			n++
			cert, err := parseCertificate(c.Data)
			if err != nil {
				invalid++
				fs.add(SeverityError, CodeInvalidCert, "Signing certificate %d cannot be read (%v); the file may have been edited by hand: download it again from Azure.", n, err)
				continue
			}
			if containsCert(certs, cert) {
				continue
			}
			certs = append(certs, cert)
			checkCertTime(fs, cert, now)
		}
	}
	if len(certs) == 0 && invalid == 0 {
		fs.add(SeverityError, CodeNoSigningCert, "The metadata has no signing certificate, so no response could be trusted; download the Federation Metadata XML again from Azure.")
	}
	return certs
}

// checkCertTime warns about cert if it is not valid at now.
func checkCertTime(fs *Findings, cert *x509.Certificate, now time.Time) {
	name := certName(cert)
	switch {
	case now.After(cert.NotAfter):
		fs.add(SeverityWarning, CodeCertExpired, "The signing certificate %s expired on %s; responses signed with it are refused. If Azure still signs with it, create a new certificate in the SAML Certificates section of the application, make it active and download the Federation Metadata XML again.", name, cert.NotAfter.UTC().Format(dateFormat))
	case now.Before(cert.NotBefore):
		fs.add(SeverityWarning, CodeCertNotYetValid, "The signing certificate %s is not valid until %s; responses signed with it are refused until then. Check this server's clock if that date has passed.", name, cert.NotBefore.UTC().Format(dateFormat))
	}
}

// certName describes cert for a finding: its subject's common name and
// its validity.
func certName(cert *x509.Certificate) string {
	cn := cert.Subject.CommonName
	if cn == "" {
		cn = cert.Subject.String()
	}
	return fmt.Sprintf("%q (valid %s to %s)", truncate(cn, 80), cert.NotBefore.UTC().Format(dateFormat), cert.NotAfter.UTC().Format(dateFormat))
}
