package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustGenerateKey(t testing.TB) *Key {
	t.Helper()
	k, err := GenerateKey(rand.Reader, testNow)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestGenerateKeyPEMRoundTrip(t *testing.T) {
	t.Parallel()
	k := mustGenerateKey(t)
	if !k.Created.Equal(testNow) {
		t.Errorf("Created = %v; want %v", k.Created, testNow)
	}
	if k.Private.Curve != elliptic.P256() {
		t.Errorf("curve = %s; want P-256", k.Private.Curve.Params().Name)
	}
	// A SHA-256 thumbprint is 32 bytes: 43 base64url characters.
	if len(k.ID) != 43 || strings.ContainsAny(k.ID, "+/=") {
		t.Errorf("ID = %q; want 43 base64url characters", k.ID)
	}

	data, err := k.MarshalPEM()
	if err != nil {
		t.Fatalf("MarshalPEM: %v", err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("MarshalPEM() = %q; want a PKCS #8 PRIVATE KEY block", data)
	}
	got, err := ParsePEMKey(data)
	if err != nil {
		t.Fatalf("ParsePEMKey(MarshalPEM()): %v", err)
	}
	if got.ID != k.ID {
		t.Errorf("ParsePEMKey(MarshalPEM()).ID = %q; want %q", got.ID, k.ID)
	}
	if !got.Private.Equal(k.Private) {
		t.Error("ParsePEMKey(MarshalPEM()) returned a different private key")
	}
	if !got.Created.IsZero() {
		t.Errorf("ParsePEMKey().Created = %v; want zero", got.Created)
	}

	other := mustGenerateKey(t)
	if other.ID == k.ID {
		t.Errorf("two generated keys share ID %q", k.ID)
	}
}

// TestThumbprint checks the key ID against an independent RFC 7638
// computation: encoding/json sorts map keys, giving the canonical member
// order.
func TestThumbprint(t *testing.T) {
	t.Parallel()
	k := mustGenerateKey(t)
	raw, err := k.Private.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := json.Marshal(map[string]string{
		"kty": "EC",
		"crv": "P-256",
		"x":   base64.RawURLEncoding.EncodeToString(raw[1:33]),
		"y":   base64.RawURLEncoding.EncodeToString(raw[33:]),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canonical)
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	got, err := Thumbprint(&k.Private.PublicKey)
	if err != nil {
		t.Fatalf("Thumbprint: %v", err)
	}
	if got != want || k.ID != want {
		t.Errorf("Thumbprint() = %q, Key.ID = %q; want %q", got, k.ID, want)
	}
}

func TestParsePEMKeyAccepts(t *testing.T) {
	t.Parallel()
	k := mustGenerateKey(t)
	sec1, err := x509.MarshalECPrivateKey(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	// `openssl ecparam -name prime256v1 -genkey` writes the curve OID first.
	params := pemBlock("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})

	tests := []struct {
		name string
		data []byte
	}{
		{"SEC 1", pemBlock("EC PRIVATE KEY", sec1)},
		{"PKCS 8", pemBlock("PRIVATE KEY", pkcs8)},
		{"EC PARAMETERS first", append(params, pemBlock("EC PRIVATE KEY", sec1)...)},
		{"leading text", append([]byte("my signing key\n"), pemBlock("PRIVATE KEY", pkcs8)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePEMKey(tt.data)
			if err != nil {
				t.Fatalf("ParsePEMKey: %v", err)
			}
			if got.ID != k.ID || !got.Private.Equal(k.Private) {
				t.Errorf("ParsePEMKey() = key %q; want key %q", got.ID, k.ID)
			}
		})
	}
}

func TestParsePEMKeyErrors(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384SEC1, err := x509.MarshalECPrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	p384PKCS8, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPKCS8, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	k := mustGenerateKey(t)
	pubDER, err := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"nil", nil, "no PEM private key block"},
		{"empty", []byte{}, "no PEM private key block"},
		{"garbage", []byte("not a key at all"), "no PEM private key block"},
		{"only EC PARAMETERS", pemBlock("EC PARAMETERS", []byte{0x06, 0x01, 0x00}), "no PEM private key block"},
		{"P-384 SEC 1", pemBlock("EC PRIVATE KEY", p384SEC1), "unsupported curve P-384"},
		{"P-384 PKCS 8", pemBlock("PRIVATE KEY", p384PKCS8), "unsupported curve P-384"},
		{"RSA PKCS 8", pemBlock("PRIVATE KEY", rsaPKCS8), "RSA keys are not supported"},
		{"RSA PKCS 1", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "RSA keys are not supported"},
		{"Ed25519", pemBlock("PRIVATE KEY", edPKCS8), "Ed25519 keys are not supported"},
		{"encrypted", pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}), "encrypted private keys"},
		{"public key", pemBlock("PUBLIC KEY", pubDER), `unexpected PEM block "PUBLIC KEY"`},
		{"corrupt SEC 1", pemBlock("EC PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01}), "parsing EC PRIVATE KEY"},
		{"corrupt PKCS 8", pemBlock("PRIVATE KEY", []byte("junk")), "parsing PKCS #8 PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePEMKey(tt.data)
			if err == nil {
				t.Fatalf("ParsePEMKey(%q) = key %q, nil; want error containing %q", tt.data, got.ID, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParsePEMKey(%q) error = %q; want it to contain %q", tt.data, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "token: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestMarshalPEMInvalidKey(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Key{nil, {}, {ID: "x", Private: p384}} {
		if _, err := k.MarshalPEM(); err == nil {
			t.Errorf("(%+v).MarshalPEM() succeeded; want error", k)
		}
	}
}
