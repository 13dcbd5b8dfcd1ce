package samltest

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// SigAlgRSASHA256 is the SigAlg of the HTTP-Redirect signatures Azure
// makes.
const SigAlgRSASHA256 = dsig.RSASHA256SignatureMethod

// LogoutRequestOptions describes a LogoutRequest from the IdP
// (IdP-initiated single logout). The zero value of each field gives what
// Azure would send, where Azure has a default.
type LogoutRequestOptions struct {
	// Destination is the SP's SLO URL; it is left out if empty.
	Destination string
	// NameID is the principal's NameID; empty means DefaultUser().Email.
	NameID string
	// NameIDFormat is the NameID Format; empty means emailAddress.
	NameIDFormat string
	// SessionIndexes are the SessionIndex elements, in order.
	SessionIndexes []string
	// Issuer is the request's Issuer; empty means the IdP's EntityID.
	Issuer string
	// IssueInstant is when the request is issued; zero means the IdP's Now.
	IssueInstant time.Time
	// NotOnOrAfter is the request's NotOnOrAfter; zero leaves it out.
	NotOnOrAfter time.Time
	// ID is the request's ID; empty means a new random ID.
	ID string
	// Sign adds an enveloped XML signature, as the HTTP-POST binding
	// carries it. For the HTTP-Redirect binding, sign the query with
	// RedirectQuery instead.
	Sign bool
}

// LogoutRequest returns a LogoutRequest shaped like Azure's, as described
// by o: the samlp prefix on protocol elements, Issuer and NameID with their
// own default namespace.
func (i *IdP) LogoutRequest(t testing.TB, o LogoutRequestOptions) []byte {
	t.Helper()
	if o.NameID == "" {
		o.NameID = DefaultUser().Email
	}
	if o.NameIDFormat == "" {
		o.NameIDFormat = NameIDFormatEmail
	}
	if o.ID == "" {
		o.ID = newID(t)
	}
	req := etree.NewElement("samlp:LogoutRequest")
	req.CreateAttr("xmlns:samlp", nsProtocol)
	req.CreateAttr("ID", o.ID)
	req.CreateAttr("Version", "2.0")
	req.CreateAttr("IssueInstant", samlTime(i.issueInstant(o.IssueInstant)))
	if !o.NotOnOrAfter.IsZero() {
		req.CreateAttr("NotOnOrAfter", samlTime(o.NotOnOrAfter))
	}
	if o.Destination != "" {
		req.CreateAttr("Destination", o.Destination)
	}
	i.issuer(req, o.Issuer)
	nameID := req.CreateElement("NameID")
	nameID.CreateAttr("xmlns", nsAssertion)
	nameID.CreateAttr("Format", o.NameIDFormat)
	nameID.SetText(o.NameID)
	for _, si := range o.SessionIndexes {
		req.CreateElement("samlp:SessionIndex").SetText(si)
	}
	if o.Sign {
		i.sign(t, req)
	}
	return writeDoc(t, req)
}

// LogoutResponseOptions describes a LogoutResponse from the IdP, answering
// an SP-initiated LogoutRequest.
type LogoutResponseOptions struct {
	// Destination is the SP's SLO URL; it is left out if empty.
	Destination string
	// InResponseTo is the ID of the LogoutRequest answered.
	InResponseTo string
	// Issuer is the response's Issuer; empty means the IdP's EntityID.
	Issuer string
	// IssueInstant is when the response is issued; zero means the IdP's
	// Now.
	IssueInstant time.Time
	// ID is the response's ID; empty means a new random ID.
	ID string
	// Status is the top-level StatusCode; empty means Success.
	Status string
	// SubStatus is the second-level StatusCode, or "".
	SubStatus string
	// StatusMessage is the StatusMessage, or "".
	StatusMessage string
	// Sign adds an enveloped XML signature (see LogoutRequestOptions.Sign).
	Sign bool
}

// LogoutResponse returns a LogoutResponse shaped like Azure's, as described
// by o.
func (i *IdP) LogoutResponse(t testing.TB, o LogoutResponseOptions) []byte {
	t.Helper()
	if o.ID == "" {
		o.ID = newID(t)
	}
	if o.Status == "" {
		o.Status = StatusSuccess
	}
	resp := etree.NewElement("samlp:LogoutResponse")
	resp.CreateAttr("xmlns:samlp", nsProtocol)
	resp.CreateAttr("ID", o.ID)
	resp.CreateAttr("Version", "2.0")
	resp.CreateAttr("IssueInstant", samlTime(i.issueInstant(o.IssueInstant)))
	if o.Destination != "" {
		resp.CreateAttr("Destination", o.Destination)
	}
	if o.InResponseTo != "" {
		resp.CreateAttr("InResponseTo", o.InResponseTo)
	}
	i.issuer(resp, o.Issuer)
	status := resp.CreateElement("samlp:Status")
	code := status.CreateElement("samlp:StatusCode")
	code.CreateAttr("Value", o.Status)
	if o.SubStatus != "" {
		code.CreateElement("samlp:StatusCode").CreateAttr("Value", o.SubStatus)
	}
	if o.StatusMessage != "" {
		status.CreateElement("samlp:StatusMessage").SetText(o.StatusMessage)
	}
	if o.Sign {
		i.sign(t, resp)
	}
	return writeDoc(t, resp)
}

// RedirectQuery returns the raw query string that carries msg with the
// HTTP-Redirect binding: param (SAMLRequest or SAMLResponse) is msg
// deflated and base64-encoded, then RelayState if relayState is not empty,
// then, if sign is set, SigAlg (RSA-SHA256) and a Signature by the IdP's
// key over the preceding parameters exactly as written, as Azure signs.
func (i *IdP) RedirectQuery(t testing.TB, param string, msg []byte, relayState string, sign bool) string {
	t.Helper()
	q := param + "=" + url.QueryEscape(Deflate(t, msg))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if !sign {
		return q
	}
	q += "&SigAlg=" + url.QueryEscape(SigAlgRSASHA256)
	sum := sha256.Sum256([]byte(q))
	sig, err := rsa.SignPKCS1v15(rand.Reader, i.Key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatalf("samltest: signing the redirect query: %v", err)
	}
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

// Deflate returns data compressed with raw DEFLATE and base64-encoded, the
// encoding of a message in the HTTP-Redirect binding.
func Deflate(t testing.TB, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	fw, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatalf("samltest: deflate: %v", err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatalf("samltest: deflate: %v", err)
	}
	if err := fw.Close(); err != nil {
		t.Fatalf("samltest: deflate: %v", err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// issueInstant returns at, or the IdP's Now if at is zero.
func (i *IdP) issueInstant(at time.Time) time.Time {
	if !at.IsZero() {
		return at
	}
	if i.Now != nil {
		return i.Now()
	}
	return time.Now()
}

// issuer adds an Issuer in its own default namespace to el: issuer, or the
// IdP's EntityID if empty.
func (i *IdP) issuer(el *etree.Element, issuer string) {
	if issuer == "" {
		issuer = i.EntityID
	}
	is := el.CreateElement("Issuer")
	is.CreateAttr("xmlns", nsAssertion)
	is.SetText(issuer)
}

// writeDoc writes el as a document without an XML declaration.
func writeDoc(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatalf("samltest: writing <%s>: %v", el.Tag, err)
	}
	return out
}
