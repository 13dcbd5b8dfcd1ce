package samltest

import (
	"testing"

	"github.com/beevik/etree"
)

// This file helps build hostile documents: responses taken apart and put
// together again after signing, as an attacker holding one genuine
// response would, and responses whose content the IdP really signed but
// shaped so as to confuse a careless parser.

// ResponseDocument returns the response Response would return for o, as an
// etree document that a test can rearrange after signing. If edit is not
// nil it is applied to the Assertion before the assertion (and the
// response) are signed, to model something the IdP itself signed, such as
// a NameID containing a comment. For a response whose status is not
// Success, which has no assertion, edit is not called.
func (i *IdP) ResponseDocument(t testing.TB, o ResponseOptions, edit func(assertion *etree.Element)) *etree.Document {
	t.Helper()
	return i.responseDocument(t, i.withDefaults(t, o), edit)
}

// Sign adds an enveloped signature by the IdP to el, an element with an ID
// attribute, right after its Issuer child, exactly as Response signs the
// Response and the Assertion.
func (i *IdP) Sign(t testing.TB, el *etree.Element) {
	t.Helper()
	i.sign(t, el)
}

// WriteDocument serializes doc as it is, without reformatting, so that
// signatures made over its elements still verify.
func WriteDocument(t testing.TB, doc *etree.Document) []byte {
	t.Helper()
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatalf("samltest: writing document: %v", err)
	}
	return out
}
