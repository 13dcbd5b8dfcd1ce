package saml

import (
	"context"
	"testing"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// TestNameIDFormats checks the NameID formats an Azure app can be set to:
// each is accepted and handed on as it is, with its format, for the
// identity to be read from the claims (and for single logout).
func TestNameIDFormats(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := newTestSP(t, testConfig(t, idp, now))
	tests := []struct {
		name, format, value string
	}{
		{"emailAddress (Azure's default)", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "alice@contoso.example"},
		{"persistent", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", "Uz2Pqz1X7pxe4XLWxV9KJQ+n59d573SepSAkuYKSde8="},
		{"unspecified", "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified", "alice@contoso.example"},
		{"transient", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "_a1b2c3d4e5f6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{
				Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID,
				NameID: tt.value, NameIDFormat: tt.format,
			}))
			a, err := sp.ParseResponse(context.Background(), resp, []string{testRequestID})
			if err != nil {
				t.Fatalf("ParseResponse() error: %v", err)
			}
			if a.NameID != tt.value || a.NameIDFormat != tt.format {
				t.Errorf("NameID = %q (%s); want %q (%s)", a.NameID, a.NameIDFormat, tt.value, tt.format)
			}
		})
	}
}
