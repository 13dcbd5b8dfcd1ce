package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// The seed corpora of the fuzz targets are in testdata/fuzz/<FuzzName>.
// Their responses and signed metadata are signed with keys that were not
// kept, and dated fuzzNow.

// fuzzNow is the time of the fuzz targets.
var fuzzNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fuzzRequestID is the only AuthnRequest ID the SP of FuzzParseResponse
// waits for. No seed answers it, so no seed can be accepted.
const fuzzRequestID = "id-fuzz-pending-request"

// addAzureFixture adds the real Azure metadata, if present, to the corpus
// of f.
func addAzureFixture(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "fixtures", "azure", "federation-metadata-1.xml"))
	if err == nil {
		f.Add(data)
	}
}

func FuzzParseMetadata(f *testing.F) {
	idp := samltest.NewIdP(f, testTenant)
	f.Add(idp.Metadata(f))
	f.Add(signMetadata(f, idp.Metadata(f), idp))
	addAzureFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadata(data)
		if err == nil {
			if m.EntityID == "" || m.SSORedirectURL == "" || len(m.SigningCerts) == 0 {
				t.Errorf("ParseMetadata() = %+v, nil; want an EntityID, an SSORedirectURL and a signing certificate", m)
			}
			if m.Descriptor == nil {
				t.Errorf("ParseMetadata() has no Descriptor")
			}
		}
		checkAgreement(t, data, ValidateMetadata(data, fuzzNow))
	})
}

func FuzzValidateMetadata(f *testing.F) {
	idp := samltest.NewIdP(f, testTenant)
	f.Add(idp.Metadata(f), fuzzNow.Unix())
	f.Add(signMetadata(f, idp.Metadata(f), idp), int64(0))
	f.Fuzz(func(t *testing.T, data []byte, unix int64) {
		now := time.Unix(unix, 0)
		fs := ValidateMetadata(data, now)
		for _, f := range fs {
			if f.Severity < SeverityInfo || f.Severity > SeverityError || f.Code == "" || f.Message == "" {
				t.Errorf("ValidateMetadata() finding %+v is incomplete", f)
			}
		}
		if again := ValidateMetadata(data, now); !slices.Equal(again, fs) {
			t.Errorf("ValidateMetadata() = %v, then %v; want the same findings each time", fs, again)
		}
		checkAgreement(t, data, fs)
	})
}

func FuzzParseResponse(f *testing.F) {
	idp := samltest.NewIdP(f, testTenant)
	idp.Now = func() time.Time { return fuzzNow }
	md, err := ParseMetadata(idp.Metadata(f))
	if err != nil {
		f.Fatal(err)
	}
	// Encryption is allowed, so that the decryption of EncryptedAssertions
	// is fuzzed too.
	creds := testCredentials()[0]
	sp, err := New(Config{
		EntityID:    spEntityID,
		ACSURL:      spACS,
		IdP:         md,
		Replay:      &memReplay{},
		Now:         func() time.Time { return fuzzNow },
		Credentials: creds,
		Encryption:  EncryptionAllowed,
	})
	if err != nil {
		f.Fatal(err)
	}
	// Responses signed with the key the SP trusts, which answer another
	// request or none: the fuzzer starts past signature verification, but
	// none can be accepted, since the request ID is signed.
	valid := samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: "id-another-request"}
	seed := idp.Response(f, valid)
	if _, err := sp.ParseResponse(context.Background(), samltest.Encode(seed), []string{fuzzRequestID}); ReasonOf(err) != ReasonRequestID {
		f.Fatalf("ParseResponse(seed) error = %v; want reason %q, after the signature is verified", err, ReasonRequestID)
	}
	f.Add(seed)
	valid.SignResponse = true
	f.Add(idp.Response(f, valid))
	f.Add([]byte(samltest.Encode(idp.Response(f, valid))))
	f.Add(idp.Response(f, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID}))
	// Encrypted to the SP's certificate (generated per run, so not in
	// testdata): decryption works, then the request ID refuses it.
	encrypted := valid
	encrypted.SignResponse, encrypted.EncryptFor = false, creds.Certificate
	f.Add(idp.Response(f, encrypted))
	encrypted.EncryptGCM = true
	f.Add(idp.Response(f, encrypted))

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, samlResponse := range []string{string(data), base64.StdEncoding.EncodeToString(data)} {
			a, err := sp.ParseResponse(context.Background(), samlResponse, []string{fuzzRequestID})
			if err == nil {
				t.Fatalf("ParseResponse(%q) = %+v; want a refusal", samlResponse, a)
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason == "" || e.Reason == ReasonInternal {
				t.Errorf("ParseResponse() error = %v (%T); want an *Error with a Reason other than %q", err, err, ReasonInternal)
			}
		}
	})
}
