package saml

import (
	"context"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// noReplay accepts every assertion ID, so that one response can be parsed
// again and again.
type noReplay struct{}

func (noReplay) MarkAssertionUsed(context.Context, string, time.Time) (bool, error) { return true, nil }

// BenchmarkParseResponse measures the ACS's verification of one Azure-shaped
// response: plain (signed assertion), and encrypted as Azure's token
// encryption does (AES-256-CBC, RSA-OAEP), which adds an RSA decryption.
func BenchmarkParseResponse(b *testing.B) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	idp := samltest.NewIdP(b, testTenant)
	idp.Now = func() time.Time { return now }
	md, err := ParseMetadata(idp.Metadata(b))
	if err != nil {
		b.Fatal(err)
	}
	creds := testCredentials()[0]
	for _, c := range []struct {
		name    string
		encrypt bool
	}{{"plain", false}, {"encrypted", true}} {
		b.Run(c.name, func(b *testing.B) {
			sp, err := New(Config{
				EntityID: spEntityID, ACSURL: spACS, IdP: md, Replay: noReplay{},
				Now: func() time.Time { return now }, Credentials: creds, Encryption: EncryptionAllowed,
			})
			if err != nil {
				b.Fatal(err)
			}
			o := samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}
			if c.encrypt {
				o.EncryptFor = creds.Certificate
			}
			resp := samltest.Encode(idp.Response(b, o))
			ids := []string{testRequestID}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sp.ParseResponse(context.Background(), resp, ids); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
