package devidp

import (
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // certificate thumbprints, as Azure shows them; not used for security
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
)

// certificateSubject is the subject common name of the generated signing
// certificate. It says what the certificate is, so that nobody mistakes it
// for Azure's "Microsoft Azure Federated SSO Certificate".
const certificateSubject = "engage-sso dev IdP (not Azure)"

// certificateValidity is how long the generated signing certificate is
// valid, like the certificates Azure creates for enterprise applications.
const certificateValidity = 3 * 365 * 24 * time.Hour

// generateSigningKey returns a new RSA-2048 key and a self-signed
// certificate for it, valid from an hour before now for three years.
func generateSigningKey(random io.Reader, now time.Time) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(random, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate signing key: %w", err)
	}
	cert, err := selfSignedCertificate(random, key, now)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// selfSignedCertificate returns a self-signed certificate for key with the
// subject certificateSubject, valid from an hour before now for
// certificateValidity.
func selfSignedCertificate(random io.Reader, key *rsa.PrivateKey, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial(random)
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: certificateSubject},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certificateValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(random, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse signing certificate: %w", err)
	}
	return cert, nil
}

// randomSerial returns a random positive 128-bit certificate serial number.
func randomSerial(random io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(random, b); err != nil {
		return nil, fmt.Errorf("generate certificate serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x01 // never zero
	return new(big.Int).SetBytes(b), nil
}

// checkKeyPair reports whether cert certifies key's public key.
func checkKeyPair(key *rsa.PrivateKey, cert *x509.Certificate) error {
	switch {
	case key == nil && cert == nil:
		return nil
	case key == nil || cert == nil:
		return errors.New("key and certificate must be set together")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("certificate does not match the key")
	}
	return nil
}

// newSigningContext returns the XML signature settings Azure uses:
// RSA-SHA256 over exclusive canonical XML, with the certificate in KeyInfo.
func newSigningContext(key *rsa.PrivateKey, cert *x509.Certificate) (*dsig.SigningContext, error) {
	ctx, err := dsig.NewSigningContext(key, [][]byte{cert.Raw})
	if err != nil {
		return nil, fmt.Errorf("create signing context: %w", err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		return nil, fmt.Errorf("create signing context: %w", err)
	}
	return ctx, nil
}

// thumbprint returns the SHA-1 thumbprint of cert in upper-case hex, the
// way the Azure portal shows the thumbprint of a SAML signing certificate.
func thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw) //nolint:gosec // a display fingerprint, as Azure shows it
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// newUUID returns a random (version 4) UUID in its canonical form.
func newUUID(random io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// newSAMLID returns an ID for a SAML message or assertion in Azure's style:
// an underscore (IDs must be XML names, which cannot start with a digit)
// followed by a random UUID.
func newSAMLID(random io.Reader) (string, error) {
	id, err := newUUID(random)
	if err != nil {
		return "", err
	}
	return "_" + id, nil
}

// funcClock is a clockwork.Clock whose current time comes from a function,
// so that crewjam's per-IdP Clock follows Config.Now. Timers and sleeps use
// the real clock; the IdP does not use them.
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

// Now implements clockwork.Clock.
func (c funcClock) Now() time.Time { return c.now() }

// Since implements clockwork.Clock.
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }

// Until implements clockwork.Clock.
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }

// newDsigClock returns a dsig.Clock that tells the time with now.
func newDsigClock(now func() time.Time) *dsig.Clock {
	return dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: now})
}
