package saml

import (
	"bytes"
	"crypto/x509"
	"fmt"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// checkSignature adds the findings about the enveloped signature of data,
// well-formed metadata without a DOCTYPE, to fs. signingCerts are the
// signing certificates of its IDPSSODescriptor.
//
// The signature is verified with the certificate of its own KeyInfo, as
// of that certificate's NotBefore (expired certificates are reported
// apart), and that certificate must then be one of signingCerts, since a
// signature proves who wrote the document only if the signer is known.
func checkSignature(fs *Findings, data []byte, signingCerts []*x509.Certificate) {
	if len(data) > MaxMetadataBytes {
		return
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(bytes.TrimPrefix(data, utf8BOM)); err != nil {
		// ParseMetadata read it, so this does not happen; say so anyway.
		fs.add(SeverityError, CodeSignatureInvalid, "The metadata's signature cannot be checked: %v.", err)
		return
	}
	root := doc.Root()
	if root == nil {
		return
	}
	var sig *etree.Element
	for _, el := range root.ChildElements() {
		if el.Tag == dsig.SignatureTag && el.NamespaceURI() == dsig.Namespace {
			sig = el
			break
		}
	}
	if sig == nil {
		fs.add(SeverityInfo, CodeUnsigned, "The metadata is not signed, so its origin cannot be checked; make sure you downloaded it from Azure yourself.")
		return
	}

	cert, err := keyInfoCert(sig)
	if err != nil {
		fs.add(SeverityError, CodeSignatureInvalid, "The metadata's signature cannot be checked: %v. Download the Federation Metadata XML again from Azure and do not edit it.", err)
		return
	}
	ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
	// Whether the certificate has expired is reported by checkCertTime;
	// here only the signature itself counts.
	ctx.Clock = dsig.NewFakeClockAt(cert.NotBefore)
	if _, err := ctx.Validate(root); err != nil {
		fs.add(SeverityError, CodeSignatureInvalid, "The metadata's signature is not valid (%v): the file has been changed since Azure signed it. Download the Federation Metadata XML again from Azure and do not edit it.", err)
		return
	}
	if !containsCert(signingCerts, cert) {
		fs.add(SeverityWarning, CodeSignerUnknown, "The metadata's signature is valid, but it was made with the certificate %s, which is not one of the metadata's signing certificates, so it does not show who wrote the document; make sure you downloaded it from Azure yourself.", certName(cert))
		return
	}
	fs.add(SeverityInfo, CodeSignatureValid, "The metadata's signature is valid, made with its signing certificate %s.", certName(cert))
}

// keyInfoCert returns the first certificate of the KeyInfo of sig, a
// Signature element.
func keyInfoCert(sig *etree.Element) (*x509.Certificate, error) {
	var data *etree.Element
	if ki := childNS(sig, dsig.Namespace, "KeyInfo"); ki != nil {
		if xd := childNS(ki, dsig.Namespace, "X509Data"); xd != nil {
			data = childNS(xd, dsig.Namespace, "X509Certificate")
		}
	}
	if data == nil {
		return nil, fmt.Errorf("it has no certificate in its KeyInfo")
	}
	cert, err := parseCertificate(data.Text())
	if err != nil {
		return nil, fmt.Errorf("the certificate in its KeyInfo cannot be read: %w", err)
	}
	return cert, nil
}

// childNS returns the first child element of el with the given namespace
// and local name, or nil.
func childNS(el *etree.Element, space, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == space {
			return c
		}
	}
	return nil
}
