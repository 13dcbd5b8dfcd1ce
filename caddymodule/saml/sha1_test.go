package saml

import (
	"context"
	"testing"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// SHA-1 signed responses (older Azure apps) are refused unless the provider
// opts in; the same response is accepted by an SP that allows SHA-1.
func TestSHA1RefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	for _, tt := range []struct {
		name      string
		allowSHA1 bool
		signBoth  bool
		want      Reason
	}{
		{"default refuses", false, false, ReasonWeakAlgorithm},
		{"default refuses response and assertion", false, true, ReasonWeakAlgorithm},
		{"opt-in accepts", true, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, idp, now)
			cfg.AllowSHA1 = tt.allowSHA1
			sp := newTestSP(t, cfg)
			resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{
				Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID,
				SHA1: true, SignAssertion: true, SignResponse: tt.signBoth,
			}))
			a, err := sp.ParseResponse(context.Background(), resp, []string{testRequestID})
			if got := ReasonOf(err); got != tt.want || (tt.want == "" && (err != nil || a == nil)) {
				t.Errorf("ParseResponse(SHA-1 signed) = %v, reason %q; want reason %q", err, got, tt.want)
			}
		})
	}
	if ReasonWeakAlgorithm.UserMessage() == "" {
		t.Error("ReasonWeakAlgorithm has no user message")
	}
}
