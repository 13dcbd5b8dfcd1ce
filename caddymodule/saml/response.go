package saml

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
)

// statusSuccess is the top-level StatusCode of a successful response.
const statusSuccess = "urn:oasis:names:tc:SAML:2.0:status:Success"

// bearerMethod is the SubjectConfirmation Method of the web browser SSO
// profile.
const bearerMethod = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

// maxStatusMessage is the longest StatusMessage kept in a StatusError.
const maxStatusMessage = 300

// Assertion is what a verified response says about the user.
type Assertion struct {
	// ID is the assertion's ID, which the replay cache records.
	ID string
	// Issuer is the IdP's entityID.
	Issuer string
	// InResponseTo is the AuthnRequest ID the assertion answers, or ""
	// for an IdP-initiated login.
	InResponseTo string
	// NameID is the subject's NameID, e.g. the user's email address.
	NameID string
	// NameIDFormat is the NameID's Format URI, or "".
	NameIDFormat string
	// SessionIndex is the SessionIndex of the first AuthnStatement (Azure
	// sets it to the assertion ID); it identifies the IdP session in
	// logout requests.
	SessionIndex string
	// IssueInstant is when the IdP issued the assertion.
	IssueInstant time.Time
	// NotOnOrAfter is the end of the assertion's validity (its Conditions
	// NotOnOrAfter), or the zero time if it has none.
	NotOnOrAfter time.Time
	// Attributes maps each attribute's Name (for Azure, the full claim URI)
	// to its values, in the order they appear in the assertion.
	Attributes map[string][]string
}

// ParseResponse verifies samlResponse, the base64 SAMLResponse form value
// posted to the ACS, and returns the assertion it carries.
//
// requestIDs are the IDs of the AuthnRequests this login may answer (from
// AuthnRequestURL, kept server-side); it is empty for a login that started
// at the IdP. ParseResponse checks:
//   - size (Config.MaxResponseBytes), base64 and XML well-formedness, and
//     refuses any DOCTYPE, and any response with more than one assertion,
//     before parsing;
//   - encryption (Config.Encryption): an EncryptedAssertion is decrypted
//     with the SP's keys, or refused when encryption is off; a plain
//     assertion is refused when encryption is required. Every decryption
//     failure gets the same refusal, so that none is an oracle;
//   - the XML signature against the IdP's signing certificates: the
//     assertion, the response or both must be signed (Azure signs only the
//     assertion by default), and every signature present must verify;
//   - Destination and SubjectConfirmationData Recipient = the ACS URL,
//     Audience = the SP's entityID, Issuer = the IdP's entityID;
//   - IssueInstant, NotBefore and NotOnOrAfter against the SP's clock,
//     allowing Config.ClockSkew (3 minutes by default) for dates in the
//     future and after NotOnOrAfter; the response must also arrive within
//     90 seconds of its IssueInstant, plus whatever the skew allowance
//     exceeds 3 minutes by (an IdP whose clock is behind dates its
//     responses in the past);
//   - InResponseTo: it must be one of requestIDs; an empty one is
//     accepted only if Config.AllowIdPInitiated;
//   - the Status, which must be Success;
//   - and, last, that the assertion ID has not been used before, through
//     the replay cache, with ctx. It is recorded until the assertion can
//     no longer be accepted anyway.
//
// Every refusal is an *Error whose Reason says why.
func (sp *SP) ParseResponse(ctx context.Context, samlResponse string, requestIDs []string) (*Assertion, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: err}
	}
	raw, rerr := sp.decode(samlResponse)
	if rerr != nil {
		return nil, rerr
	}
	info, rerr := inspectResponse(raw)
	if rerr != nil {
		return nil, rerr
	}

	switch {
	case info.encryptedAssertions > 0 && sp.encrypt == EncryptionOff:
		return nil, refuse(ReasonEncryptionNotSetUp, "the assertion is encrypted, but encryption is off for this provider: turn token encryption off at the IdP, or turn it on here and give the IdP this provider's certificate")
	case info.assertions > 0 && sp.encrypt == EncryptionRequired:
		return nil, refuse(ReasonNotEncrypted, "the assertion is not encrypted, but this provider requires encryption: turn on token encryption at the IdP with this provider's certificate")
	}
	if info.sha1 != "" && !sp.allowSHA1 {
		return nil, refuse(ReasonWeakAlgorithm, "the response is signed with a SHA-1 based algorithm (%s); set the IdP to SHA-256, or allow SHA-1 for this provider", info.sha1)
	}

	now := sp.now()
	a, err := sp.crewjamAt(sp.limits.verifyClock(info.times, now)).ParseXMLResponse(raw, requestIDs, sp.acsURL)
	if err != nil {
		return nil, sp.classify(err, info, now)
	}
	times := timesOf(a, info.times.responseIssueInstant)
	if rerr := sp.limits.check(times, now); rerr != nil {
		return nil, rerr
	}

	if a.ID == "" {
		// Only possible when just the Response is signed; without an ID
		// the assertion cannot be checked for replay.
		return nil, refuse(ReasonMalformed, "the assertion has no ID")
	}
	first, err := sp.replay.MarkAssertionUsed(ctx, a.ID, sp.limits.replayUntil(times))
	if err != nil {
		return nil, refuse(ReasonInternal, "recording assertion %q in the replay cache: %w", a.ID, err)
	}
	if !first {
		return nil, refuse(ReasonReplay, "assertion %q has already been used", a.ID)
	}
	return newAssertion(a), nil
}

// scanRefusal turns an error of scanXML over the message named what into
// the refusal it means, or nil for no error.
func scanRefusal(err error, what string) *Error {
	var rerr *Error
	var syntax *xmlSyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rerr):
		return rerr
	case errors.Is(err, errDoctype), errors.Is(err, errHTMLDoctype):
		return refuse(ReasonMalformed, "%s has a DOCTYPE declaration", what)
	case errors.Is(err, errNoRoot):
		return refuse(ReasonMalformed, "%s is not XML", what)
	case errors.As(err, &syntax):
		return refuse(ReasonMalformed, "%s is not well-formed XML: %w", what, err)
	default:
		return refuse(ReasonMalformed, "reading %s: %w", what, err)
	}
}

// decode checks the size of the SAMLResponse form value and decodes it.
func (sp *SP) decode(samlResponse string) ([]byte, *Error) {
	samlResponse = strings.TrimSpace(samlResponse)
	if samlResponse == "" {
		return nil, refuse(ReasonMalformed, "SAMLResponse is empty")
	}
	// Allow for line breaks in the encoding, but do not decode input that
	// is certainly too large.
	if len(samlResponse) > 2*base64.StdEncoding.EncodedLen(sp.maxBytes) {
		return nil, refuse(ReasonMalformed, "SAMLResponse is larger than %d bytes", sp.maxBytes)
	}
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		return nil, refuse(ReasonMalformed, "SAMLResponse is not valid base64: %w", err)
	}
	if len(raw) > sp.maxBytes {
		return nil, refuse(ReasonMalformed, "SAMLResponse is larger than %d bytes (%d)", sp.maxBytes, len(raw))
	}
	return raw, nil
}

// responseInfo is what inspectResponse reads from a response before it is
// verified. It is used only to refuse early and to explain refusals, never
// to accept anything.
type responseInfo struct {
	// inResponseTo holds the InResponseTo of the Response and of each
	// SubjectConfirmationData, empty ones included.
	inResponseTo []string
	// responseSigned and assertionSigned report a Signature child of the
	// Response and of an Assertion.
	responseSigned, assertionSigned bool
	assertions, encryptedAssertions int
	// sha1 is the first SHA-1 based SignatureMethod or DigestMethod
	// algorithm anywhere in the document, or "".
	sha1 string
	// status is the Status of the Response.
	status StatusError
	// times are the response's dates, unverified: they only choose the
	// clock crewjam verifies at (see timeLimits.verifyClock) and explain
	// its time refusals. Only the Response IssueInstant, which crewjam
	// checks but does not return, is also used after verification.
	times responseTimes
}

// sha1Algorithms are the XML Signature algorithms based on SHA-1.
var sha1Algorithms = map[string]bool{
	"http://www.w3.org/2000/09/xmldsig#rsa-sha1":         true,
	"http://www.w3.org/2000/09/xmldsig#sha1":             true,
	"http://www.w3.org/2000/09/xmldsig#dsa-sha1":         true,
	"http://www.w3.org/2000/09/xmldsig#hmac-sha1":        true,
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1":  true,
	"http://www.w3.org/2001/04/xmldsig-more/#ecdsa-sha1": true,
}

// unsolicited reports whether the response answers no request at all.
func (info *responseInfo) unsolicited() bool {
	for _, id := range info.inResponseTo {
		if id != "" {
			return false
		}
	}
	return true
}

// inspectResponse checks that raw is a well-formed XML document without a
// DOCTYPE whose root is a SAML Response, and reads responseInfo from it. It
// refuses a response with more than one assertion, and a successful one
// that nothing claims to sign.
func inspectResponse(raw []byte) (*responseInfo, *Error) {
	info := &responseInfo{}
	err := scanXML(raw, func(path []xml.Name, tok xml.Token) error {
		el := path[len(path)-1]
		if text, ok := tok.(xml.CharData); ok {
			if len(path) == 3 && el == (xml.Name{Space: nsProtocol, Local: "StatusMessage"}) && path[1] == (xml.Name{Space: nsProtocol, Local: "Status"}) {
				info.status.Message += string(text)
			}
			return nil
		}
		start := tok.(xml.StartElement)
		// Only the algorithms of a signature: an EncryptedKey's OAEP
		// DigestMethod is SHA-1 in Azure's token encryption, and is not a
		// signature algorithm.
		if el.Space == nsDSig && (el.Local == "SignatureMethod" || el.Local == "DigestMethod") && info.sha1 == "" && inSignedInfo(path) {
			if alg := attr(start, "Algorithm"); sha1Algorithms[alg] {
				info.sha1 = alg
			}
		}
		switch {
		case len(path) == 1:
			if el != (xml.Name{Space: nsProtocol, Local: "Response"}) {
				if el.Space != "" {
					return refuse(ReasonMalformed, "not a SAML Response: root element is <%s> in namespace %q", el.Local, el.Space)
				}
				return refuse(ReasonMalformed, "not a SAML Response: root element is <%s>", el.Local)
			}
			info.inResponseTo = append(info.inResponseTo, attr(start, "InResponseTo"))
			info.times.responseIssueInstant = parseTime(attr(start, "IssueInstant"))
		case len(path) == 2 && el == xml.Name{Space: nsDSig, Local: "Signature"}:
			info.responseSigned = true
		case len(path) == 2 && el == xml.Name{Space: nsAssertion, Local: "Assertion"}:
			info.assertions++
			info.times.assertionIssueInstant = parseTime(attr(start, "IssueInstant"))
		case len(path) == 3 && el == xml.Name{Space: nsAssertion, Local: "Conditions"} && path[1] == xml.Name{Space: nsAssertion, Local: "Assertion"}:
			info.times.notBefore = parseTime(attr(start, "NotBefore"))
			info.times.notOnOrAfter = parseTime(attr(start, "NotOnOrAfter"))
		case len(path) == 2 && el == xml.Name{Space: nsAssertion, Local: "EncryptedAssertion"}:
			info.encryptedAssertions++
		case len(path) == 3 && el == xml.Name{Space: nsDSig, Local: "Signature"} && path[1] == xml.Name{Space: nsAssertion, Local: "Assertion"}:
			info.assertionSigned = true
		case el == xml.Name{Space: nsAssertion, Local: "SubjectConfirmationData"}:
			info.inResponseTo = append(info.inResponseTo, attr(start, "InResponseTo"))
			info.times.confirmations = append(info.times.confirmations, confirmationTimes{
				notBefore: parseTime(attr(start, "NotBefore")), notOnOrAfter: parseTime(attr(start, "NotOnOrAfter")),
			})
		case el == xml.Name{Space: nsProtocol, Local: "StatusCode"} && path[1] == xml.Name{Space: nsProtocol, Local: "Status"}:
			// Response/Status/StatusCode[/StatusCode]
			switch len(path) {
			case 3:
				info.status.Code = attr(start, "Value")
			case 4:
				info.status.SubCode = attr(start, "Value")
			}
		}
		return nil
	})
	if rerr := scanRefusal(err, "SAMLResponse"); rerr != nil {
		return nil, rerr
	}
	info.status.Message = truncate(strings.TrimSpace(info.status.Message), maxStatusMessage)

	// Hardening (issue 4, found by hardening_test.go): crewjam returns the
	// first of several assertions in a signed Response and refuses more than
	// one only in an unsigned one. Azure sends exactly one; refuse more, so
	// that no other assertion is left unrecorded in the replay cache.
	if n := info.assertions + info.encryptedAssertions; n > 1 {
		return nil, refuse(ReasonMalformed, "the response has %d assertions; exactly one is expected", n)
	}
	// An encrypted assertion's signature is inside the encryption; crewjam
	// checks it after decrypting.
	if info.status.Code == statusSuccess && !info.responseSigned && !info.assertionSigned && info.encryptedAssertions == 0 {
		return nil, refuse(ReasonSignature, "neither the Response nor its Assertion is signed")
	}
	return info, nil
}

// classify turns an error of crewjam's ParseXMLResponse into an *Error,
// using crewjam's typed errors.
func (sp *SP) classify(err error, info *responseInfo, now time.Time) *Error {
	var invalid *crewjam.InvalidResponseError
	if errors.As(err, &invalid) && invalid.PrivateErr != nil {
		err = invalid.PrivateErr
	}
	var status crewjam.ErrBadStatus
	if errors.As(err, &status) {
		st := info.status
		if st.Code == "" {
			st.Code = status.Status
		}
		return &Error{Reason: ReasonIdPStatus, Err: &st}
	}
	// What crewjam does not classify is a response this SP cannot use.
	reason := ReasonMalformed
	if r, ok := crewjamReason(err); ok {
		reason = r
	}
	if reason == ReasonRequestID && !sp.allowIdP && info.unsolicited() {
		reason = ReasonUnsolicited
	}
	if reason == ReasonExpired || reason == ReasonNotYetValid {
		// A time refusal: say which date and by how much, under this
		// SP's limits, so the page can point at a clock problem.
		if rerr := sp.limits.check(info.times, now); rerr != nil && rerr.Reason != ReasonMalformed {
			rerr.Err = fmt.Errorf("%w (%w)", rerr.Err, err)
			return rerr
		}
	}
	return &Error{Reason: reason, Err: err}
}

// crewjamReason maps crewjam's typed verification errors to a Reason; ok
// is false for an error crewjam did not classify, whose meaning depends on
// the caller.
func crewjamReason(err error) (r Reason, ok bool) {
	switch {
	// crewjam's (unexported) RejectSHA1Signatures refusal, which is how a
	// SHA-1 signature inside an encrypted assertion is found. It matches
	// ErrInvalidSignature too: test it first.
	case strings.Contains(err.Error(), "SHA-1 based signature algorithms are not accepted"):
		return ReasonWeakAlgorithm, true
	// Certificate errors also match ErrInvalidSignature: test them first.
	case errors.Is(err, crewjam.ErrUntrustedCertificate):
		return ReasonUntrustedCert, true
	case errors.Is(err, crewjam.ErrCertificateNotValidNow):
		return ReasonCertificateExpired, true
	case errors.Is(err, crewjam.ErrInvalidSignature):
		return ReasonSignature, true
	case errors.Is(err, crewjam.ErrExpired):
		return ReasonExpired, true
	case errors.Is(err, crewjam.ErrNotYetValid):
		return ReasonNotYetValid, true
	case errors.Is(err, crewjam.ErrIssuerMismatch):
		return ReasonIssuer, true
	case errors.Is(err, crewjam.ErrDestinationMismatch):
		return ReasonDestination, true
	case errors.Is(err, crewjam.ErrAudienceMismatch):
		return ReasonAudience, true
	case errors.Is(err, crewjam.ErrRequestIDMismatch):
		return ReasonRequestID, true
	case errors.Is(err, crewjam.ErrDecryptionFailed):
		return ReasonDecryption, true
	case strings.Contains(err.Error(), "signature element not present"):
		// crewjam's unexported error for a missing signature, such as an
		// unsigned assertion inside an encryption in an unsigned Response.
		return ReasonSignature, true
	case errors.Is(err, crewjam.ErrMalformedMessage), errors.Is(err, crewjam.ErrMissingElement),
		errors.Is(err, crewjam.ErrUnsupported):
		return ReasonMalformed, true
	}
	return "", false
}

// newAssertion copies what callers need from a, a verified assertion.
func newAssertion(a *crewjam.Assertion) *Assertion {
	out := &Assertion{
		ID:           a.ID,
		Issuer:       a.Issuer.Value,
		IssueInstant: a.IssueInstant,
		Attributes:   map[string][]string{},
	}
	if a.Conditions != nil {
		out.NotOnOrAfter = a.Conditions.NotOnOrAfter
	}
	if s := a.Subject; s != nil {
		if s.NameID != nil {
			out.NameID = strings.TrimSpace(s.NameID.Value)
			out.NameIDFormat = s.NameID.Format
		}
		for _, sc := range s.SubjectConfirmations {
			if d := sc.SubjectConfirmationData; sc.Method == bearerMethod && d != nil && d.InResponseTo != "" {
				out.InResponseTo = d.InResponseTo
				break
			}
		}
	}
	if len(a.AuthnStatements) > 0 {
		out.SessionIndex = a.AuthnStatements[0].SessionIndex
	}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			values := out.Attributes[at.Name]
			for _, v := range at.Values {
				values = append(values, v.Value)
			}
			out.Attributes[at.Name] = values
		}
	}
	return out
}

// parseTime parses an xs:dateTime as SAML writes it (UTC, with or without
// fractional seconds); anything else is the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t
}

// inSignedInfo reports whether the element at path is inside a ds:SignedInfo.
func inSignedInfo(path []xml.Name) bool {
	for _, n := range path[:len(path)-1] {
		if n == (xml.Name{Space: nsDSig, Local: "SignedInfo"}) {
			return true
		}
	}
	return false
}
