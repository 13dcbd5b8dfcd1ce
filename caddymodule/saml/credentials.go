package saml

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// credentialsValidity is how long a generated SP certificate is valid.
// Azure only uses it to encrypt to and to check request signatures; the
// SP replaces it by configuring new credentials, not by expiry.
const credentialsValidity = 10 * 365 * 24 * time.Hour

// Credentials are an SP's RSA key pair: the key decrypts assertions and
// signs requests; the certificate carries the public key to the IdP.
type Credentials struct {
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate
}

// GenerateCredentials makes an RSA 2048 key (as Azure's own) and a self-signed certificate
// for it, with common name cn, valid from an hour before now for ten
// years. random nil means crypto/rand.
func GenerateCredentials(random io.Reader, cn string, now time.Time) (*Credentials, error) {
	if random == nil {
		random = rand.Reader
	}
	key, err := rsa.GenerateKey(random, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating the SP key: %w", err)
	}
	serial, err := rand.Int(random, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating a certificate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:              now.Add(credentialsValidity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(random, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the SP certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("reading back the SP certificate: %w", err)
	}
	return &Credentials{Key: key, Certificate: cert}, nil
}

// ParseCredentials reads a PEM certificate and a PEM RSA private key
// (PKCS #1 "RSA PRIVATE KEY" or PKCS #8 "PRIVATE KEY") and checks that
// they belong together. The certificate may be followed by others (a
// chain); only the first is used.
func ParseCredentials(certPEM, keyPEM []byte) (*Credentials, error) {
	certBlock, _ := pem.Decode(certPEM)
	if certBlock == nil || certBlock.Type != "CERTIFICATE" {
		return nil, errors.New("the certificate file has no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate: %w", err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the certificate does not belong to the key: their public keys differ")
	}
	return &Credentials{Key: key, Certificate: cert}, nil
}

// ParsePrivateKey reads a PEM RSA private key (PKCS #1 "RSA PRIVATE KEY" or
// PKCS #8 "PRIVATE KEY") of at least 2048 bits.
func ParsePrivateKey(keyPEM []byte) (*rsa.PrivateKey, error) {
	keyBlock, _ := pem.Decode(keyPEM)
	if keyBlock == nil {
		return nil, errors.New("the key file has no PEM block")
	}
	var key *rsa.PrivateKey
	var err error
	switch keyBlock.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(keyBlock.Bytes)
	case "PRIVATE KEY":
		var k any
		k, err = x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
		if err == nil {
			var ok bool
			if key, ok = k.(*rsa.PrivateKey); !ok {
				return nil, fmt.Errorf("the key is a %T; XML encryption needs an RSA key", k)
			}
		}
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the key file is encrypted with a passphrase; give the key unencrypted (and protect the file)")
	default:
		return nil, fmt.Errorf("the key file holds a %q PEM block; want RSA PRIVATE KEY or PRIVATE KEY", keyBlock.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the key: %w", err)
	}
	if key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("the RSA key has %d bits; use at least 2048", key.N.BitLen())
	}
	return key, nil
}

// MarshalPEM returns the certificate and the key (PKCS #8) as PEM.
func (c *Credentials) MarshalPEM() (certPEM, keyPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the SP key: %w", err)
	}
	return CertificatePEM(c.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertificatePEM returns cert as a PEM CERTIFICATE block, the ".cer"
// format Azure's token encryption and verification certificate uploads
// take.
func CertificatePEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}
