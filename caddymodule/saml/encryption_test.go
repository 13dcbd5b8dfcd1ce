package saml

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// Generating RSA keys is slow under -race: each test binary makes three.
var testCredentials = sync.OnceValue(func() [3]*Credentials {
	var out [3]*Credentials
	for i := range out {
		c, err := GenerateCredentials(nil, "engage-sso test SP", time.Now())
		if err != nil {
			panic(err)
		}
		out[i] = c
	}
	return out
})

// encryptedSP returns an SP with the first test credentials and the given
// encryption mode.
func encryptedSP(t *testing.T, idp *samltest.IdP, now time.Time, mode EncryptionMode, edit func(*Config)) *SP {
	t.Helper()
	cfg := testConfig(t, idp, now)
	cfg.Credentials = testCredentials()[0]
	cfg.Encryption = mode
	if edit != nil {
		edit(&cfg)
	}
	return newTestSP(t, cfg)
}

func TestEncryptedAssertions(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	creds := testCredentials()
	spCert, otherCert, oldCert := creds[0].Certificate, creds[1].Certificate, creds[2].Certificate

	tests := []struct {
		name    string
		mode    EncryptionMode
		options samltest.ResponseOptions
		config  func(*Config)
		want    Reason
	}{
		{name: "AES-256-CBC, as Azure", mode: EncryptionAllowed, options: samltest.ResponseOptions{EncryptFor: spCert}},
		{name: "AES-256-GCM", mode: EncryptionAllowed, options: samltest.ResponseOptions{EncryptFor: spCert, EncryptGCM: true}},
		{name: "response and assertion signed", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: spCert, SignAssertion: true, SignResponse: true}},
		{name: "only the response signed", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: spCert, SignResponse: true}},
		{name: "required, encrypted", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: spCert}},
		{name: "allowed, plain", mode: EncryptionAllowed},
		{name: "required, plain", mode: EncryptionRequired, want: ReasonNotEncrypted},
		{name: "off, encrypted", mode: EncryptionOff, options: samltest.ResponseOptions{EncryptFor: spCert}, want: ReasonEncryptionNotSetUp},
		{name: "encrypted to another certificate", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: otherCert}, want: ReasonDecryption},
		{
			name: "encrypted to the previous certificate", mode: EncryptionRequired,
			options: samltest.ResponseOptions{EncryptFor: oldCert},
			config:  func(c *Config) { c.PreviousKeys = []*rsa.PrivateKey{creds[2].Key} },
		},
		{name: "SHA-1 signature inside the encryption", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: spCert, SHA1: true}, want: ReasonWeakAlgorithm},
		{
			name: "SHA-1 inside the encryption, allowed", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: spCert, SHA1: true},
			config: func(c *Config) { c.AllowSHA1 = true },
		},
		{name: "unsigned assertion inside the encryption", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: spCert, Unsigned: true}, want: ReasonSignature},
		{name: "signed by another IdP", mode: EncryptionRequired, options: samltest.ResponseOptions{EncryptFor: spCert, Issuer: "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"}, want: ReasonIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sp := encryptedSP(t, idp, now, tt.mode, tt.config)
			o := tt.options
			o.Destination, o.Audience, o.InResponseTo = spACS, spEntityID, testRequestID
			raw := idp.Response(t, o)
			if o.EncryptFor != nil && (bytes.Contains(raw, []byte("alice@contoso")) || !bytes.Contains(raw, []byte("EncryptedAssertion"))) {
				t.Fatalf("the test response is not encrypted:\n%s", raw)
			}
			a, err := sp.ParseResponse(context.Background(), samltest.Encode(raw), []string{testRequestID})
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("ParseResponse() reason = %q (%v); want %q", got, err, tt.want)
			}
			if tt.want == "" && a.NameID != samltest.DefaultUser().Email {
				t.Errorf("NameID = %q; want %q", a.NameID, samltest.DefaultUser().Email)
			}
		})
	}
}

// TestDecryptionNoOracle checks that a ciphertext that fails to decrypt
// (bad padding) and one that decrypts to something that is not an
// assertion get the same refusal, word for word: a difference is the
// oracle CBC attacks on XML Encryption need.
func TestDecryptionNoOracle(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := encryptedSP(t, idp, now, EncryptionRequired, nil)
	cert := testCredentials()[0].Certificate

	responseWith := func(plain []byte, corrupt bool) string {
		enc := xmlenc.OAEP()
		enc.DigestMethod = &xmlenc.SHA1
		enc.BlockCipher = xmlenc.AES256CBC
		data, err := enc.Encrypt(cert, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		if corrupt {
			cv := data.FindElement("./CipherData/CipherValue")
			ct, err := base64.StdEncoding.DecodeString(cv.Text())
			if err != nil {
				t.Fatal(err)
			}
			ct[len(ct)-1] ^= 0x5a // the last block: breaks the padding
			cv.SetText(base64.StdEncoding.EncodeToString(ct))
		}
		doc := idp.ResponseDocument(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}, nil)
		root := doc.Root()
		old := root.FindElement("./Assertion")
		ea := etree.NewElement("EncryptedAssertion")
		ea.CreateAttr("xmlns", "urn:oasis:names:tc:SAML:2.0:assertion")
		ea.AddChild(data)
		root.InsertChildAt(old.Index(), ea)
		root.RemoveChild(old)
		return samltest.Encode(samltest.WriteDocument(t, doc))
	}

	var msgs []string
	for _, c := range []struct {
		name    string
		plain   []byte
		corrupt bool
	}{
		{"bad padding", []byte(`<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion"/>`), true},
		{"not XML", []byte("not xml at all, but well padded"), false},
		{"a DOCTYPE", []byte(`<!DOCTYPE a [<!ENTITY x "y">]><Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion">&x;</Assertion>`), false},
	} {
		_, err := sp.ParseResponse(context.Background(), responseWith(c.plain, c.corrupt), []string{testRequestID})
		if got := ReasonOf(err); got != ReasonDecryption {
			t.Fatalf("%s: ParseResponse() reason = %q (%v); want %q", c.name, got, err, ReasonDecryption)
		}
		msgs = append(msgs, err.Error())
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i] != msgs[0] {
			t.Errorf("decryption refusals differ:\n%s\n%s", msgs[0], msgs[i])
		}
	}
}

func TestSPCredentials(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	creds := testCredentials()
	mismatched := &Credentials{Key: creds[0].Key, Certificate: creds[1].Certificate}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"encryption without credentials", func(c *Config) { c.Encryption = EncryptionAllowed }, "need the SP's key and certificate"},
		{"signing without credentials", func(c *Config) { c.SignAuthnRequests = true }, "need the SP's key and certificate"},
		{"certificate of another key", func(c *Config) { c.Encryption = EncryptionRequired; c.Credentials = mismatched }, "public key differs"},
		{"unknown mode", func(c *Config) { c.Encryption = 7; c.Credentials = creds[0] }, "unknown encryption mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			tt.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSPMetadataKeys(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	certB64 := base64.StdEncoding.EncodeToString(testCredentials()[0].Certificate.Raw)
	tests := []struct {
		name                 string
		mode                 EncryptionMode
		sign                 bool
		encryptionKey, signs bool
	}{
		{name: "plain"},
		{name: "signing only", sign: true, signs: true},
		{name: "encryption allowed", mode: EncryptionAllowed, encryptionKey: true},
		{name: "encryption required and signing", mode: EncryptionRequired, sign: true, encryptionKey: true, signs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			if tt.mode != EncryptionOff || tt.sign {
				cfg.Credentials = testCredentials()[0]
			}
			cfg.Encryption, cfg.SignAuthnRequests = tt.mode, tt.sign
			md, err := newTestSP(t, cfg).Metadata()
			if err != nil {
				t.Fatal(err)
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(md); err != nil {
				t.Fatal(err)
			}
			spd := doc.FindElement("//SPSSODescriptor")
			if got, want := spd.SelectAttrValue("AuthnRequestsSigned", ""), map[bool]string{true: "true", false: "false"}[tt.signs]; got != want {
				t.Errorf("AuthnRequestsSigned = %q; want %q", got, want)
			}
			for use, want := range map[string]bool{"encryption": tt.encryptionKey, "signing": tt.signs} {
				kd := spd.FindElement("./KeyDescriptor[@use='" + use + "']")
				if (kd != nil) != want {
					t.Errorf("KeyDescriptor use=%q present = %v; want %v\n%s", use, kd != nil, want, md)
					continue
				}
				if kd != nil && !strings.Contains(kd.FindElement(".//X509Certificate").Text(), certB64[:40]) {
					t.Errorf("KeyDescriptor use=%q does not hold the SP certificate", use)
				}
			}
		})
	}
}

func TestSignedAuthnRequest(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	for _, sign := range []bool{false, true} {
		cfg := testConfig(t, idp, now)
		cfg.Credentials = testCredentials()[0]
		cfg.SignAuthnRequests = sign
		redirect, _, err := newTestSP(t, cfg).AuthnRequestURL("relay-key")
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(redirect)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if !sign {
			if q.Has("Signature") || q.Has("SigAlg") {
				t.Errorf("unsigned request has a signature: %s", redirect)
			}
			continue
		}
		if got := q.Get("SigAlg"); got != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
			t.Fatalf("SigAlg = %q; want rsa-sha256", got)
		}
		// saml-bindings §3.4.4.1: the signature is over the query string
		// "SAMLRequest=...&RelayState=...&SigAlg=..." as sent.
		var signed []string
		for _, part := range strings.Split(u.RawQuery, "&") {
			if !strings.HasPrefix(part, "Signature=") {
				signed = append(signed, part)
			}
		}
		sig, err := base64.StdEncoding.DecodeString(q.Get("Signature"))
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte(strings.Join(signed, "&")))
		pub := testCredentials()[0].Certificate.PublicKey.(*rsa.PublicKey)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("the AuthnRequest signature does not verify with the SP certificate: %v", err)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	t.Parallel()
	c := testCredentials()[0]
	certPEM, keyPEM, err := c.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	otherCert := CertificatePEM(testCredentials()[1].Certificate)
	tests := []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"round trip", certPEM, keyPEM, ""},
		{"no certificate", []byte("hello"), keyPEM, "no PEM CERTIFICATE"},
		{"key swapped", keyPEM, certPEM, "no PEM CERTIFICATE"},
		{"other certificate", otherCert, keyPEM, "does not belong"},
		{"no key", certPEM, []byte(""), "no PEM block"},
		{"encrypted key", certPEM, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), "passphrase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCredentials(tt.cert, tt.key)
			if tt.want == "" {
				if err != nil || !got.Certificate.Equal(c.Certificate) {
					t.Fatalf("ParseCredentials() = %v; want the credentials back", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCredentials() error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}
