package saml

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var allReasons = []Reason{
	ReasonMalformed, ReasonSignature, ReasonUntrustedCert, ReasonCertificateExpired,
	ReasonExpired, ReasonNotYetValid, ReasonIssuer, ReasonDestination, ReasonAudience,
	ReasonRequestID, ReasonUnsolicited, ReasonReplay, ReasonIdPStatus, ReasonInternal,
	ReasonWeakAlgorithm, ReasonClockSkew, ReasonEncryptionNotSetUp, ReasonNotEncrypted, ReasonDecryption,
}

func TestReasonUserMessage(t *testing.T) {
	t.Parallel()
	fallback := Reason("no_such_reason").UserMessage()
	seen := map[string]Reason{}
	for _, r := range allReasons {
		msg := r.UserMessage()
		if msg == "" || msg == fallback {
			t.Errorf("%q.UserMessage() = %q; want a message of its own", r, msg)
		}
		if other, ok := seen[msg]; ok {
			t.Errorf("%q.UserMessage() = %q, the same as for %q", r, msg, other)
		}
		seen[msg] = r
		if strings.ContainsAny(msg, "<>_") {
			t.Errorf("%q.UserMessage() = %q; want plain words without markup or codes", r, msg)
		}
	}
	for _, r := range []Reason{ReasonExpired, ReasonNotYetValid, ReasonClockSkew} {
		if msg := r.UserMessage(); !strings.Contains(msg, "clock") {
			t.Errorf("%q.UserMessage() = %q; want it to mention that the clocks may differ", r, msg)
		}
	}
	if msg := ReasonExpired.UserMessage(); !strings.Contains(msg, "too long") {
		t.Errorf("%q.UserMessage() = %q; want it to mention that the sign-in may have taken too long", ReasonExpired, msg)
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	cause := errors.New("assertion Conditions is expired")
	err := error(&Error{Reason: ReasonExpired, Err: cause})
	if got, want := err.Error(), "saml response refused (expired): assertion Conditions is expired"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false; want true", err)
	}
	if got, want := (&Error{Reason: ReasonReplay}).Error(), "saml response refused (replayed)"; got != want {
		t.Errorf("Error() without detail = %q; want %q", got, want)
	}
}

func TestReasonOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want Reason
	}{
		{nil, ""},
		{&Error{Reason: ReasonAudience}, ReasonAudience},
		{fmt.Errorf("acs: %w", &Error{Reason: ReasonReplay}), ReasonReplay},
		{errors.New("something else"), ReasonInternal},
	}
	for _, tt := range tests {
		if got := ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}

func TestStatusError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  StatusError
		want string
	}{
		{StatusError{Code: "urn:oasis:names:tc:SAML:2.0:status:Responder"}, "identity provider answered urn:oasis:names:tc:SAML:2.0:status:Responder"},
		{
			StatusError{Code: "urn:oasis:names:tc:SAML:2.0:status:Requester", SubCode: "urn:oasis:names:tc:SAML:2.0:status:RequestDenied", Message: "AADSTS50105"},
			"identity provider answered urn:oasis:names:tc:SAML:2.0:status:Requester / urn:oasis:names:tc:SAML:2.0:status:RequestDenied: AADSTS50105",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q; want %q", tt.err, got, tt.want)
		}
	}
}
