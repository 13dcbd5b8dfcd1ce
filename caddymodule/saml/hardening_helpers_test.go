package saml

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/beevik/etree"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// Helpers of hardening_test.go, and the attacks that do not fit its table.

// Values of the attacks: the address of the user the attacker wants to
// become, and an address an IdP really signed (atkCommentedUser) that the
// attacker hopes is read cut short at a comment (atkTruncated).
const (
	atkEvilEmail     = "mallory@contoso.example"
	atkTruncated     = "user@contoso.com"
	atkCommentedUser = "user@contoso.com.evil.com"
)

// atkOptions returns the options of a valid response to testRequestID.
func atkOptions() samltest.ResponseOptions {
	return samltest.ResponseOptions{
		Destination:  spACS,
		Audience:     spEntityID,
		InResponseTo: testRequestID,
		User:         samltest.DefaultUser(),
	}
}

// atkEncode serializes doc and encodes it as a SAMLResponse form value.
func atkEncode(t *testing.T, doc *etree.Document) string {
	t.Helper()
	return samltest.Encode(samltest.WriteDocument(t, doc))
}

// atkChild returns the child of parent with tag (prefix:local or local),
// failing the test if there is none.
func atkChild(t *testing.T, parent *etree.Element, tag string) *etree.Element {
	t.Helper()
	el := parent.SelectElement(tag)
	if el == nil {
		t.Fatalf("no <%s> in <%s>", tag, parent.Tag)
	}
	return el
}

// atkFind returns the first element matching the etree path under root,
// failing the test if there is none.
func atkFind(t *testing.T, root *etree.Element, path string) *etree.Element {
	t.Helper()
	el := root.FindElement(path)
	if el == nil {
		t.Fatalf("no %s in <%s>", path, root.Tag)
	}
	return el
}

// atkEmail returns the emailaddress AttributeValue of assertion.
func atkEmail(t *testing.T, assertion *etree.Element) *etree.Element {
	t.Helper()
	return atkFind(t, assertion, "AttributeStatement/Attribute[@Name='"+samltest.ClaimEmailAddress+"']/AttributeValue")
}

// atkSplitWithComment replaces the text of el with head, an empty comment
// and tail: <el>head<!---->tail</el>.
func atkSplitWithComment(el *etree.Element, head, tail string) {
	el.SetText(head)
	el.CreateComment("")
	el.CreateText(tail)
}

// atkExtensions inserts an empty samlp:Extensions right after the Issuer
// of resp, where the schema allows it, and returns it.
func atkExtensions(resp *etree.Element) *etree.Element {
	ext := etree.NewElement("samlp:Extensions")
	resp.InsertChildAt(1, ext)
	return ext
}

// atkReplace replaces the first occurrence of old in raw, which must
// be there, with new and returns the SAMLResponse.
func atkReplace(t *testing.T, raw []byte, old, new string) string {
	t.Helper()
	if !bytes.Contains(raw, []byte(old)) {
		t.Fatalf("%q not found in the response", old)
	}
	return samltest.Encode(bytes.Replace(raw, []byte(old), []byte(new), 1))
}

// atkResult is what an accepted attack must have yielded: the values the
// IdP signed, never the attacker's.
type atkResult struct {
	nameID, email string
}

// TestParseResponseAttackReplay replays a genuine response and its signed
// assertion in a new envelope: the replay cache, keyed by assertion ID,
// refuses both, whatever the envelope.
func TestParseResponseAttackReplay(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := newTestSP(t, testConfig(t, idp, now))
	ids := []string{testRequestID}

	doc := idp.ResponseDocument(t, atkOptions(), nil)
	resp := atkEncode(t, doc)
	if _, err := sp.ParseResponse(context.Background(), resp, ids); err != nil {
		t.Fatalf("first ParseResponse() error: %v", err)
	}

	// The same response again, still answering a pending request.
	got, err := sp.ParseResponse(context.Background(), resp, ids)
	if r := ReasonOf(err); got != nil || r != ReasonReplay {
		t.Errorf("ParseResponse(same response) = %+v, reason %q (%v); want nil, %q", got, r, err, ReasonReplay)
	}

	// The signed assertion in a new Response envelope with its own ID and
	// IssueInstant.
	o := atkOptions()
	o.Unsigned = true
	envelope := idp.ResponseDocument(t, o, nil)
	envelope.Root().RemoveChild(atkChild(t, envelope.Root(), "Assertion"))
	envelope.Root().AddChild(atkChild(t, doc.Root(), "Assertion").Copy())
	if envelope.Root().SelectAttrValue("ID", "") == doc.Root().SelectAttrValue("ID", "") {
		t.Fatal("the new envelope has the old Response ID")
	}
	got, err = sp.ParseResponse(context.Background(), atkEncode(t, envelope), ids)
	if r := ReasonOf(err); got != nil || r != ReasonReplay {
		t.Errorf("ParseResponse(assertion in a new envelope) = %+v, reason %q (%v); want nil, %q", got, r, err, ReasonReplay)
	}
}

// TestScanXMLNamespaceWellFormed checks that scanXML refuses names that are
// not namespace-well-formed, which encoding/xml reads as local names with
// a colon, and still accepts the prefixed and default names SAML uses.
func TestScanXMLNamespaceWellFormed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		doc    string
		refuse bool
	}{
		{`<samlp:Response xmlns:samlp="urn:p" xmlns="urn:a" ID="_1"><Issuer/></samlp:Response>`, false},
		{`<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t"/>`, false},
		{`<r><:Assertion/></r>`, true},
		{`<r xmlns:="urn:a"/>`, true},
		{`<r><a :ID="x"/></r>`, true},
		{`<r a:b:c="x"/>`, true},
		{`<r><p:x:A xmlns:p="urn:p"/></r>`, true},
	}
	for _, tt := range tests {
		err := scanXML([]byte(tt.doc), nil)
		var syntax *xmlSyntaxError
		if tt.refuse && !errors.As(err, &syntax) {
			t.Errorf("scanXML(%q) = %v; want an *xmlSyntaxError", tt.doc, err)
		}
		if !tt.refuse && err != nil {
			t.Errorf("scanXML(%q) = %v; want nil", tt.doc, err)
		}
	}
}
