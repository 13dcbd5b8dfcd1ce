package samltest

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

const tenant = "8b966979-910b-487c-a604-69229b1ac75c"

func parse(t *testing.T, data []byte) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})); err != nil {
		t.Fatalf("not XML: %v\n%s", err, data)
	}
	return doc.Root()
}

// verify checks the enveloped signature of el against cert at time at.
func verify(t *testing.T, el *etree.Element, cert *x509.Certificate, at time.Time) error {
	t.Helper()
	ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
	ctx.Clock = dsig.NewFakeClockAt(at)
	_, err := ctx.Validate(el)
	return err
}

func TestNewIdP(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	if want := "https://sts.windows.net/" + tenant + "/"; idp.EntityID != want {
		t.Errorf("EntityID = %q; want %q", idp.EntityID, want)
	}
	if want := "https://login.microsoftonline.com/" + tenant + "/saml2"; idp.SSOURL != want {
		t.Errorf("SSOURL = %q; want %q", idp.SSOURL, want)
	}
	if idp.Key.N.BitLen() != 2048 {
		t.Errorf("key size = %d; want 2048", idp.Key.N.BitLen())
	}
	if got := idp.Cert.Subject.CommonName; got != "Microsoft Azure Federated SSO Certificate" {
		t.Errorf("certificate subject CN = %q; want Azure's", got)
	}
	if err := idp.Cert.CheckSignature(idp.Cert.SignatureAlgorithm, idp.Cert.RawTBSCertificate, idp.Cert.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}
	if now := time.Now(); now.Before(idp.Cert.NotBefore) || now.After(idp.Cert.NotAfter) {
		t.Errorf("certificate valid %v to %v; want now included", idp.Cert.NotBefore, idp.Cert.NotAfter)
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	md := idp.Metadata(t)
	if !bytes.HasPrefix(md, []byte{0xEF, 0xBB, 0xBF}) {
		t.Errorf("Metadata() does not start with a UTF-8 BOM")
	}
	if bytes.HasPrefix(idp.MetadataWith(t, MetadataOptions{NoBOM: true}), []byte{0xEF, 0xBB, 0xBF}) {
		t.Errorf("MetadataWith(NoBOM) starts with a BOM")
	}
	root := parse(t, md)
	if root.Tag != "EntityDescriptor" || root.SelectAttrValue("entityID", "") != idp.EntityID {
		t.Fatalf("root = <%s entityID=%q>; want <EntityDescriptor entityID=%q>", root.Tag, root.SelectAttrValue("entityID", ""), idp.EntityID)
	}
	sso := root.FindElements("./IDPSSODescriptor/SingleSignOnService")
	if len(sso) != 2 || sso[0].SelectAttrValue("Binding", "") != BindingHTTPRedirect || sso[1].SelectAttrValue("Binding", "") != BindingHTTPPost {
		t.Errorf("metadata has %d SingleSignOnServices; want HTTP-Redirect then HTTP-POST", len(sso))
	}
	for _, s := range sso {
		if got := s.SelectAttrValue("Location", ""); got != idp.SSOURL {
			t.Errorf("SingleSignOnService Location = %q; want %q", got, idp.SSOURL)
		}
	}
	certs := root.FindElements("./IDPSSODescriptor/KeyDescriptor[@use='signing']/KeyInfo/X509Data/X509Certificate")
	if len(certs) != 1 || certs[0].Text() != base64.StdEncoding.EncodeToString(idp.Cert.Raw) {
		t.Errorf("IDPSSODescriptor has %d signing certificates; want the IdP's", len(certs))
	}
	if root.FindElement("./RoleDescriptor") == nil {
		t.Errorf("metadata has no WS-Fed RoleDescriptor")
	}
	other := NewIdP(t, tenant)
	two := parse(t, idp.MetadataWith(t, MetadataOptions{SigningCerts: []*x509.Certificate{idp.Cert, other.Cert}, NoRedirectSSO: true}))
	if n := len(two.FindElements("./IDPSSODescriptor/KeyDescriptor")); n != 2 {
		t.Errorf("MetadataWith(2 certs) has %d KeyDescriptors; want 2", n)
	}
	if n := len(two.FindElements("./IDPSSODescriptor/SingleSignOnService")); n != 1 {
		t.Errorf("MetadataWith(NoRedirectSSO) has %d SingleSignOnServices; want 1", n)
	}
}

func TestResponse(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	now := time.Now().UTC().Truncate(time.Millisecond)
	idp.Now = func() time.Time { return now }
	base := ResponseOptions{Destination: "https://sp.example.com/acs", Audience: "https://sp.example.com", InResponseTo: "id-1"}

	tests := []struct {
		name                            string
		change                          func(*ResponseOptions)
		responseSigned, assertionSigned bool
	}{
		{"default", func(*ResponseOptions) {}, false, true},
		{"response", func(o *ResponseOptions) { o.SignResponse = true }, true, false},
		{"both", func(o *ResponseOptions) { o.SignResponse, o.SignAssertion = true, true }, true, true},
		{"unsigned", func(o *ResponseOptions) { o.Unsigned = true }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := base
			tt.change(&o)
			root := parse(t, idp.Response(t, o))
			assertion := root.FindElement("./Assertion")
			if assertion == nil {
				t.Fatal("response has no Assertion")
			}
			for _, c := range []struct {
				name   string
				el     *etree.Element
				signed bool
			}{{"Response", root, tt.responseSigned}, {"Assertion", assertion, tt.assertionSigned}} {
				sig := c.el.FindElement("./Signature")
				if (sig != nil) != c.signed {
					t.Errorf("%s signed = %v; want %v", c.name, sig != nil, c.signed)
					continue
				}
				if sig == nil {
					continue
				}
				// Azure puts the Signature right after the Issuer.
				if idx := sig.Index(); idx != 1 {
					t.Errorf("%s Signature is child %d; want 1, after Issuer", c.name, idx)
				}
				if err := verify(t, c.el, idp.Cert, now); err != nil {
					t.Errorf("%s signature does not verify: %v", c.name, err)
				}
			}
		})
	}

	root := parse(t, idp.Response(t, base))
	a := root.FindElement("./Assertion")
	checks := []struct{ what, got, want string }{
		{"Destination", root.SelectAttrValue("Destination", ""), base.Destination},
		{"InResponseTo", root.SelectAttrValue("InResponseTo", ""), "id-1"},
		{"Issuer", root.FindElement("./Issuer").Text(), idp.EntityID},
		{"NameID", a.FindElement("./Subject/NameID").Text(), DefaultUser().Email},
		{"NameID Format", a.FindElement("./Subject/NameID").SelectAttrValue("Format", ""), NameIDFormatEmail},
		{"Recipient", a.FindElement("./Subject/SubjectConfirmation/SubjectConfirmationData").SelectAttrValue("Recipient", ""), base.Destination},
		{"Audience", a.FindElement("./Conditions/AudienceRestriction/Audience").Text(), base.Audience},
		{"NotBefore", a.FindElement("./Conditions").SelectAttrValue("NotBefore", ""), now.Add(-5 * time.Minute).Format("2006-01-02T15:04:05.000Z")},
		{"NotOnOrAfter", a.FindElement("./Conditions").SelectAttrValue("NotOnOrAfter", ""), now.Add(70 * time.Minute).Format("2006-01-02T15:04:05.000Z")},
		{"SessionIndex", a.FindElement("./AuthnStatement").SelectAttrValue("SessionIndex", ""), a.SelectAttrValue("ID", "")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("response %s = %q; want %q", c.what, c.got, c.want)
		}
	}
	var names []string
	for _, at := range a.FindElements("./AttributeStatement/Attribute") {
		names = append(names, at.SelectAttrValue("Name", "")[strings.LastIndex(at.SelectAttrValue("Name", ""), "/")+1:])
	}
	if got, want := strings.Join(names, ","), "tenantid,objectidentifier,displayname,groups,identityprovider,authnmethodsreferences,givenname,surname,emailaddress,name"; got != want {
		t.Errorf("attribute order = %s; want Azure's %s", got, want)
	}
}

func TestResponseError(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	root := parse(t, idp.Response(t, ResponseOptions{Status: StatusRequester, SubStatus: StatusRequestDenied, StatusMessage: "AADSTS50105"}))
	if root.FindElement("./Assertion") != nil || root.FindElement("./Signature") != nil {
		t.Errorf("error response has an Assertion or a Signature; want neither")
	}
	if got := root.FindElement("./Status/StatusCode/StatusCode").SelectAttrValue("Value", ""); got != StatusRequestDenied {
		t.Errorf("second-level StatusCode = %q; want %q", got, StatusRequestDenied)
	}
	if got := root.FindElement("./Status/StatusMessage").Text(); got != "AADSTS50105" {
		t.Errorf("StatusMessage = %q; want %q", got, "AADSTS50105")
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	if got, want := Encode([]byte("<a/>")), "PGEvPg=="; got != want {
		t.Errorf("Encode(%q) = %q; want %q", "<a/>", got, want)
	}
}
