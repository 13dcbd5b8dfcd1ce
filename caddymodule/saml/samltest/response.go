package samltest

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// Attribute is a SAML attribute: a claim URI and its values.
type Attribute struct {
	Name   string
	Values []string
}

// User is the person a response is about.
type User struct {
	ObjectID  string
	Email     string
	GivenName string
	Surname   string
	Groups    []string
	Roles     []string
	// Overage sends Azure's groups.link claim instead of Groups, as for a
	// user in more than 150 groups.
	Overage bool
}

// DefaultUser returns the user of responses whose options name none.
func DefaultUser() User {
	return User{
		ObjectID:  "5e1c9a7f-2b4d-4a8e-9c3f-7d1b6e2a4c90",
		Email:     "alice@contoso.example",
		GivenName: "Alice",
		Surname:   "Example",
		Groups:    []string{"0f3b5d7e-1a2c-4e6f-8b9d-3c5e7f9a1b2d", "a7c9e1f3-5b7d-4f2a-8c4e-6d8f0a2c4e6b"},
	}
}

// Attributes returns the attributes Azure sends for u, in Azure's order:
// tenantid, objectidentifier, displayname, groups and role (when u has
// any), identityprovider, authnmethodsreferences, givenname, surname,
// emailaddress and name (the UPN, here the email address).
func (i *IdP) Attributes(u User) []Attribute {
	attrs := []Attribute{
		{ClaimTenantID, []string{i.TenantID}},
		{ClaimObjectID, []string{u.ObjectID}},
		{ClaimDisplayName, []string{u.GivenName + " " + u.Surname}},
	}
	switch {
	case u.Overage:
		// Over 150 groups, Azure sends a link to the user's groups in
		// place of the groups claim.
		attrs = append(attrs, Attribute{ClaimGroupsLink, []string{
			"https://graph.windows.net/" + i.TenantID + "/users/" + u.ObjectID + "/getMemberObjects"}})
	case len(u.Groups) > 0:
		attrs = append(attrs, Attribute{ClaimGroups, u.Groups})
	}
	if len(u.Roles) > 0 {
		attrs = append(attrs, Attribute{ClaimRole, u.Roles})
	}
	return append(attrs,
		Attribute{ClaimIdentityProvider, []string{i.EntityID}},
		Attribute{ClaimAuthnMethodsReferences, []string{"http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"}},
		Attribute{ClaimGivenName, []string{u.GivenName}},
		Attribute{ClaimSurname, []string{u.Surname}},
		Attribute{ClaimEmailAddress, []string{u.Email}},
		Attribute{ClaimName, []string{u.Email}},
	)
}

// ResponseOptions describes a response. The zero value of each field
// gives what Azure would send, where Azure has a default.
type ResponseOptions struct {
	// Destination is the Response's Destination (the ACS URL); it is left
	// out if empty.
	Destination string
	// Recipient is the SubjectConfirmationData Recipient; empty means
	// Destination.
	Recipient string
	// Audience is the assertion's Audience (the SP entityID); the
	// AudienceRestriction is left out if empty.
	Audience string
	// InResponseTo is the AuthnRequest ID answered, on the Response and
	// the SubjectConfirmationData; empty means an IdP-initiated response.
	InResponseTo string

	// User is the person the response is about; the zero value means
	// DefaultUser().
	User User
	// NameID is the subject's NameID; empty means User.Email.
	NameID string
	// NameIDFormat is the NameID Format; empty means emailAddress.
	NameIDFormat string
	// Attributes are the attributes in order; nil means i.Attributes(User).
	// An empty non-nil slice leaves out the AttributeStatement.
	Attributes []Attribute

	// Issuer is the Issuer of the Response and Assertion; empty means the
	// IdP's EntityID.
	Issuer string
	// IssueInstant is when the response is issued; zero means the IdP's
	// Now.
	IssueInstant time.Time
	// NotBefore and NotOnOrAfter bound the Conditions; zero means 5
	// minutes before and 70 minutes after IssueInstant, as Azure does.
	NotBefore, NotOnOrAfter time.Time
	// SubjectNotOnOrAfter is the SubjectConfirmationData NotOnOrAfter;
	// zero means 5 minutes after IssueInstant, as Azure does.
	SubjectNotOnOrAfter time.Time

	// SignAssertion and SignResponse choose what is signed. If both are
	// false only the assertion is signed, Azure's default, unless
	// Unsigned is set.
	SignAssertion, SignResponse bool
	// Unsigned leaves both the response and the assertion unsigned.
	Unsigned bool
	// SHA1 signs with RSA-SHA1 (and a SHA-1 digest), as older Azure apps
	// do, instead of RSA-SHA256.
	SHA1 bool

	// EncryptFor, when set, encrypts the assertion (after signing it) to
	// this certificate, as Azure's token encryption does: an
	// EncryptedAssertion whose EncryptedData uses AES-256-CBC, with the
	// content key wrapped by RSA-OAEP (MGF1, SHA-1 digest) in its KeyInfo.
	EncryptFor *x509.Certificate
	// EncryptGCM encrypts with AES-256-GCM instead of AES-256-CBC.
	EncryptGCM bool

	// AssertionID and ResponseID are the element IDs; empty means a new
	// random ID.
	AssertionID, ResponseID string

	// Status is the top-level StatusCode; empty means Success. A response
	// with another status carries no assertion, like Azure's error
	// responses, and is not signed unless SignResponse is set.
	Status string
	// SubStatus is the second-level StatusCode, e.g. StatusRequestDenied.
	SubStatus string
	// StatusMessage is the StatusMessage, e.g. an AADSTS error.
	StatusMessage string
}

// Response returns a SAML Response shaped and signed as Azure would, as
// described by o. It fails the test if signing fails.
func (i *IdP) Response(t testing.TB, o ResponseOptions) []byte {
	t.Helper()
	return WriteDocument(t, i.responseDocument(t, i.withDefaults(t, o), nil))
}

// responseDocument builds the response for o (defaults applied), applying
// edit to the Assertion before anything is signed.
func (i *IdP) responseDocument(t testing.TB, o ResponseOptions, edit func(assertion *etree.Element)) *etree.Document {
	t.Helper()
	resp := etree.NewElement("samlp:Response")
	resp.CreateAttr("ID", o.ResponseID)
	resp.CreateAttr("Version", "2.0")
	resp.CreateAttr("IssueInstant", samlTime(o.IssueInstant))
	if o.Destination != "" {
		resp.CreateAttr("Destination", o.Destination)
	}
	if o.InResponseTo != "" {
		resp.CreateAttr("InResponseTo", o.InResponseTo)
	}
	resp.CreateAttr("xmlns:samlp", nsProtocol)
	issuer := resp.CreateElement("Issuer")
	issuer.CreateAttr("xmlns", nsAssertion)
	issuer.SetText(o.Issuer)

	status := resp.CreateElement("samlp:Status")
	code := status.CreateElement("samlp:StatusCode")
	code.CreateAttr("Value", o.Status)
	if o.SubStatus != "" {
		code.CreateElement("samlp:StatusCode").CreateAttr("Value", o.SubStatus)
	}
	if o.StatusMessage != "" {
		status.CreateElement("samlp:StatusMessage").SetText(o.StatusMessage)
	}

	method := dsig.RSASHA256SignatureMethod
	if o.SHA1 {
		method = dsig.RSASHA1SignatureMethod
	}
	if o.Status == StatusSuccess {
		assertion := i.assertion(o)
		if edit != nil {
			edit(assertion)
		}
		if o.SignAssertion {
			i.signWith(t, assertion, method)
		}
		if o.EncryptFor != nil {
			assertion = encryptAssertion(t, assertion, o.EncryptFor, o.EncryptGCM)
		}
		resp.AddChild(assertion)
	}
	if o.SignResponse {
		i.signWith(t, resp, method)
	}
	doc := etree.NewDocument()
	doc.SetRoot(resp)
	return doc
}

// withDefaults fills in the defaults of o.
func (i *IdP) withDefaults(t testing.TB, o ResponseOptions) ResponseOptions {
	t.Helper()
	if o.Recipient == "" {
		o.Recipient = o.Destination
	}
	if o.User.Email == "" && o.User.ObjectID == "" {
		o.User = DefaultUser()
	}
	if o.NameID == "" {
		o.NameID = o.User.Email
	}
	if o.NameIDFormat == "" {
		o.NameIDFormat = NameIDFormatEmail
	}
	if o.Attributes == nil {
		o.Attributes = i.Attributes(o.User)
	}
	if o.Issuer == "" {
		o.Issuer = i.EntityID
	}
	if o.IssueInstant.IsZero() {
		now := time.Now
		if i.Now != nil {
			now = i.Now
		}
		o.IssueInstant = now()
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = o.IssueInstant.Add(-5 * time.Minute)
	}
	if o.NotOnOrAfter.IsZero() {
		o.NotOnOrAfter = o.IssueInstant.Add(70 * time.Minute)
	}
	if o.SubjectNotOnOrAfter.IsZero() {
		o.SubjectNotOnOrAfter = o.IssueInstant.Add(5 * time.Minute)
	}
	if !o.SignAssertion && !o.SignResponse && !o.Unsigned {
		o.SignAssertion = true
	}
	if o.Unsigned {
		o.SignAssertion, o.SignResponse = false, false
	}
	if o.AssertionID == "" {
		o.AssertionID = newID(t)
	}
	if o.ResponseID == "" {
		o.ResponseID = newID(t)
	}
	if o.Status == "" {
		o.Status = StatusSuccess
	}
	return o
}

// assertion builds the unsigned Assertion of o, which has its defaults.
func (i *IdP) assertion(o ResponseOptions) *etree.Element {
	a := etree.NewElement("Assertion")
	a.CreateAttr("ID", o.AssertionID)
	a.CreateAttr("IssueInstant", samlTime(o.IssueInstant))
	a.CreateAttr("Version", "2.0")
	a.CreateAttr("xmlns", nsAssertion)
	a.CreateElement("Issuer").SetText(o.Issuer)

	subject := a.CreateElement("Subject")
	nameID := subject.CreateElement("NameID")
	nameID.CreateAttr("Format", o.NameIDFormat)
	nameID.SetText(o.NameID)
	sc := subject.CreateElement("SubjectConfirmation")
	sc.CreateAttr("Method", bearerMethod)
	scd := sc.CreateElement("SubjectConfirmationData")
	if o.InResponseTo != "" {
		scd.CreateAttr("InResponseTo", o.InResponseTo)
	}
	scd.CreateAttr("NotOnOrAfter", samlTime(o.SubjectNotOnOrAfter))
	if o.Recipient != "" {
		scd.CreateAttr("Recipient", o.Recipient)
	}

	cond := a.CreateElement("Conditions")
	cond.CreateAttr("NotBefore", samlTime(o.NotBefore))
	cond.CreateAttr("NotOnOrAfter", samlTime(o.NotOnOrAfter))
	if o.Audience != "" {
		cond.CreateElement("AudienceRestriction").CreateElement("Audience").SetText(o.Audience)
	}

	if len(o.Attributes) > 0 {
		stmt := a.CreateElement("AttributeStatement")
		for _, at := range o.Attributes {
			el := stmt.CreateElement("Attribute")
			el.CreateAttr("Name", at.Name)
			for _, v := range at.Values {
				el.CreateElement("AttributeValue").SetText(v)
			}
		}
	}

	authn := a.CreateElement("AuthnStatement")
	authn.CreateAttr("AuthnInstant", samlTime(o.IssueInstant.Add(-7*time.Second)))
	authn.CreateAttr("SessionIndex", o.AssertionID)
	authn.CreateElement("AuthnContext").CreateElement("AuthnContextClassRef").SetText(passwordProtectedClass)
	return a
}

// sign adds an enveloped signature to el right after its Issuer, as Azure
// places it: RSA-SHA256, exclusive canonicalization, the certificate in
// KeyInfo, and the ds namespace as the Signature's default namespace.
func (i *IdP) sign(t testing.TB, el *etree.Element) {
	t.Helper()
	i.signWith(t, el, dsig.RSASHA256SignatureMethod)
}

// signWith signs el with the given signature method (its digest follows).
func (i *IdP) signWith(t testing.TB, el *etree.Element, method string) {
	t.Helper()
	ctx, err := dsig.NewSigningContext(i.Key, [][]byte{i.Cert.Raw})
	if err != nil {
		t.Fatalf("samltest: signing context: %v", err)
	}
	ctx.Prefix = ""
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(method); err != nil {
		t.Fatalf("samltest: signature method: %v", err)
	}
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		t.Fatalf("samltest: signing <%s>: %v", el.Tag, err)
	}
	at := 0
	for n, child := range el.Child {
		if c, ok := child.(*etree.Element); ok && c.Tag == "Issuer" {
			at = n + 1
			break
		}
	}
	el.InsertChildAt(at, sig)
}

// samlTime formats t as SAML writes times: UTC, millisecond precision.
func samlTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// encryptAssertion returns an EncryptedAssertion holding assertion
// encrypted to cert.
func encryptAssertion(t testing.TB, assertion *etree.Element, cert *x509.Certificate, gcm bool) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(assertion.Copy())
	plain, err := doc.WriteToBytes()
	if err != nil {
		t.Fatalf("samltest: writing the assertion to encrypt: %v", err)
	}
	enc := xmlenc.OAEP()
	enc.DigestMethod = &xmlenc.SHA1
	enc.BlockCipher = xmlenc.AES256CBC
	if gcm {
		enc.BlockCipher = xmlenc.AES256GCM
	}
	data, err := enc.Encrypt(cert, plain, nil)
	if err != nil {
		t.Fatalf("samltest: encrypting the assertion: %v", err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ea := etree.NewElement("EncryptedAssertion")
	ea.CreateAttr("xmlns", nsAssertion)
	ea.AddChild(data)
	return ea
}
