package saml

import (
	"errors"
	"fmt"
)

// Reason says, in a stable machine-readable word, why a SAML response was
// refused. It is meant for logs, metrics and choosing the error page shown
// to the user.
type Reason string

// The reasons ParseResponse refuses a response for.
const (
	// ReasonMalformed: the SAMLResponse is not valid base64, not XML, has a
	// DOCTYPE, is too large, is not a SAML Response, lacks a required
	// element, or uses something this SP does not support (such as an
	// encrypted assertion).
	ReasonMalformed Reason = "malformed_response"

	// ReasonSignature: nothing in the response is signed, or a signature
	// does not verify (the response was altered after signing).
	ReasonSignature Reason = "invalid_signature"

	// ReasonUntrustedCert: the response is signed with a certificate that
	// is not in the IdP metadata. The IdP probably rolled its signing
	// certificate and the metadata held here is out of date.
	ReasonUntrustedCert Reason = "untrusted_certificate"

	// ReasonCertificateExpired: the response is signed with a certificate
	// from the metadata whose validity period does not include now.
	ReasonCertificateExpired Reason = "certificate_expired"

	// ReasonExpired: the response or assertion is too old: its
	// IssueInstant or a NotOnOrAfter has passed (allowing for clock skew).
	ReasonExpired Reason = "expired"

	// ReasonNotYetValid: the response or assertion is dated in the future
	// (beyond the allowed clock skew).
	ReasonNotYetValid Reason = "not_yet_valid"

	// ReasonClockSkew: the response was issued longer ago than allowed
	// although it is still within its validity period: what a fresh
	// response from an IdP whose clock is behind looks like. The clock of
	// the IdP or of this server is probably wrong.
	ReasonClockSkew Reason = "clock_skew"

	// ReasonEncryptionNotSetUp: the assertion is encrypted, but encryption
	// is off for this provider (the IdP's token encryption was turned on
	// without telling this SP).
	ReasonEncryptionNotSetUp Reason = "encryption_not_set_up"

	// ReasonNotEncrypted: the assertion is not encrypted, but the provider
	// requires encryption.
	ReasonNotEncrypted Reason = "assertion_not_encrypted"

	// ReasonDecryption: the encrypted assertion could not be decrypted with
	// the SP's keys: the IdP encrypts to another certificate than this
	// provider's, or the ciphertext was altered.
	ReasonDecryption Reason = "decryption_failed"

	// ReasonIssuer: the Issuer is not the IdP's entityID from its metadata.
	ReasonIssuer Reason = "issuer_mismatch"

	// ReasonDestination: the response or its SubjectConfirmationData
	// Recipient names another ACS URL, for example another provider's.
	ReasonDestination Reason = "wrong_destination"

	// ReasonAudience: the assertion is not meant for this SP's entityID.
	ReasonAudience Reason = "audience_mismatch"

	// ReasonRequestID: the response answers an AuthnRequest that this
	// login did not issue (or that has already been answered or expired).
	ReasonRequestID Reason = "unknown_request"

	// ReasonUnsolicited: the response answers no AuthnRequest (an
	// IdP-initiated login, e.g. from Azure My Apps) and the provider does
	// not allow IdP-initiated logins.
	ReasonUnsolicited Reason = "idp_initiated_not_allowed"

	// ReasonReplay: the assertion has been used before.
	ReasonReplay Reason = "replayed"

	// ReasonIdPStatus: the IdP answered with a status other than Success,
	// e.g. Requester/RequestDenied when the user is not assigned to the
	// application. The detail is a *StatusError.
	ReasonIdPStatus Reason = "idp_error"

	// ReasonWeakAlgorithm: the response is signed with a SHA-1 based
	// algorithm, which is refused unless the provider allows it
	// (Config.AllowSHA1).
	ReasonWeakAlgorithm Reason = "weak_signature_algorithm"

	// ReasonInternal: the response could not be checked because of a fault
	// on this side, such as an unreachable replay cache. The login is
	// refused (fail closed).
	ReasonInternal Reason = "internal"
)

// UserMessage returns an explanation of r that is safe to show in the
// browser: it reveals no secrets and no part of the response, and suggests
// what the user can do.
func (r Reason) UserMessage() string {
	switch r {
	case ReasonMalformed:
		return "The sign-in response from your identity provider could not be read. Please try signing in again."
	case ReasonWeakAlgorithm:
		return "Your identity provider signed the sign-in response with SHA-1, which this site does not accept. Administrator: in the Azure app's SAML Signing Certificate settings, set the signing algorithm to SHA-256."
	case ReasonSignature:
		return "The sign-in response from your identity provider is not correctly signed, so it cannot be trusted. Please try signing in again; if this keeps happening, contact your administrator."
	case ReasonUntrustedCert:
		return "Your identity provider signed the sign-in response with a certificate this site does not know. Its signing certificate has probably changed: ask your administrator to update the identity provider metadata here."
	case ReasonCertificateExpired:
		return "The certificate your identity provider signs with has expired or is not valid yet. Ask your administrator to renew the signing certificate and update the identity provider metadata here."
	case ReasonExpired:
		return "The sign-in response has expired. The sign-in may have taken too long, or the clocks of your identity provider and this server may differ. Please try signing in again."
	case ReasonNotYetValid:
		return "The sign-in response is dated in the future: the clock of your identity provider or of this server is probably wrong. Please try again in a moment; administrator: check this server's time synchronisation (NTP), or allow more clock skew for this provider."
	case ReasonClockSkew:
		return "The sign-in response is dated further in the past than this site allows, although it was just issued: the clock of your identity provider or of this server is probably wrong. Please try again; administrator: check this server's time synchronisation (NTP), or allow more clock skew for this provider."
	case ReasonEncryptionNotSetUp:
		return "Your identity provider encrypted the sign-in response, but encryption is not set up for it here. Administrator: turn off token encryption for the application in Azure, or turn on encryption for this provider and upload its certificate to Azure."
	case ReasonNotEncrypted:
		return "This site requires the sign-in response to be encrypted, and your identity provider sent it unencrypted. Administrator: turn on token encryption for the application in Azure, with this provider's certificate."
	case ReasonDecryption:
		return "The encrypted sign-in response could not be decrypted. Administrator: check that the certificate uploaded to Azure's token encryption settings is this provider's current certificate."
	case ReasonIssuer:
		return "The sign-in response comes from an identity provider this site does not expect. Ask your administrator to check the single sign-on configuration."
	case ReasonDestination:
		return "The sign-in response was meant for another application or sign-in address. Ask your administrator to check the Reply URL configured at your identity provider."
	case ReasonAudience:
		return "The sign-in response was issued for another application. Ask your administrator to check the Identifier (Entity ID) configured at your identity provider."
	case ReasonRequestID:
		return "This sign-in response does not belong to a sign-in started from this browser, or that sign-in has already finished or expired. Please start signing in again."
	case ReasonUnsolicited:
		return "Signing in from your identity provider's portal is not enabled for this application. Please start signing in from this site instead."
	case ReasonReplay:
		return "This sign-in response has already been used. Please start signing in again."
	case ReasonIdPStatus:
		return "Your identity provider did not sign you in. You may not be assigned to this application; contact your administrator if you should have access."
	case ReasonInternal:
		return "Signing in is temporarily unavailable because of a problem on our side. Please try again in a few minutes."
	default:
		return "Signing in failed. Please try again."
	}
}

// Error is the error ParseResponse returns for every refused response.
// Error() gives the reason and the detail, which is meant for logs only:
// show Reason.UserMessage() to the user instead.
type Error struct {
	// Reason says why the response was refused.
	Reason Reason
	// Err is the detail. It matches the typed errors of
	// github.com/crewjam/saml (such as saml.ErrExpired) with errors.Is
	// when the refusal came from there.
	Err error
}

// Error returns "saml response refused (<reason>): <detail>".
func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("saml response refused (%s)", e.Reason)
	}
	return fmt.Sprintf("saml response refused (%s): %v", e.Reason, e.Err)
}

// Unwrap returns the detail.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the *Error in err's chain, ReasonInternal
// if there is none, or "" if err is nil.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonInternal
}

// refuse returns an *Error for reason with a detail made from format and
// args as by fmt.Errorf.
func refuse(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// StatusError is the detail of a ReasonIdPStatus refusal: the status the
// IdP answered with. Its fields come from the unsigned part of the response
// and are for logs only.
type StatusError struct {
	// Code is the top-level StatusCode, e.g.
	// urn:oasis:names:tc:SAML:2.0:status:Requester.
	Code string
	// SubCode is the second-level StatusCode, e.g.
	// urn:oasis:names:tc:SAML:2.0:status:RequestDenied, or "".
	SubCode string
	// Message is the StatusMessage, shortened; Azure AD puts its AADSTS
	// error code and text there.
	Message string
}

// Error returns "identity provider answered <code>[/<subcode>][: <message>]".
func (e *StatusError) Error() string {
	s := "identity provider answered " + e.Code
	if e.SubCode != "" {
		s += " / " + e.SubCode
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}
