package saml

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// signMetadata returns data, a metadata document, with an enveloped
// signature by idp's key as the first child of its root, as Azure signs
// its metadata.
func signMetadata(t testing.TB, data []byte, idp *samltest.IdP) []byte {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(bytes.TrimPrefix(data, utf8BOM)); err != nil {
		t.Fatalf("signMetadata: reading: %v", err)
	}
	ctx, err := dsig.NewSigningContext(idp.Key, [][]byte{idp.Cert.Raw})
	if err != nil {
		t.Fatalf("signMetadata: %v", err)
	}
	ctx.Prefix = ""
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatalf("signMetadata: %v", err)
	}
	root := doc.Root()
	sig, err := ctx.ConstructSignature(root, true)
	if err != nil {
		t.Fatalf("signMetadata: signing: %v", err)
	}
	root.InsertChildAt(0, sig)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatalf("signMetadata: writing: %v", err)
	}
	return append(append([]byte{}, utf8BOM...), out...)
}

// checkAgreement fails t unless fs, the findings about data, agree with
// ParseMetadata: it refuses data exactly when fs has an Error other than
// CodeSignatureInvalid.
func checkAgreement(t testing.TB, data []byte, fs Findings) {
	t.Helper()
	structural := false
	for _, f := range fs {
		if f.Severity == SeverityError && f.Code != CodeSignatureInvalid {
			structural = true
		}
		if f.Message == "" || f.Code == "" {
			t.Errorf("ValidateMetadata() finding %+v has no code or message", f)
		}
	}
	_, err := ParseMetadata(data)
	if (err == nil) == structural {
		t.Errorf("ParseMetadata() error = %v, but ValidateMetadata() = %v", err, fs)
	}
}

func codes(fs Findings) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	slices.Sort(out)
	return out
}

func TestValidateMetadata(t *testing.T) {
	t.Parallel()
	now := time.Now()
	idp := samltest.NewIdP(t, testTenant)
	other := samltest.NewIdP(t, testTenant)
	expired := samltest.SelfSignedCert(t, idp.Key, time.Date(2017, 1, 3, 0, 0, 0, 0, time.UTC), time.Date(2019, 1, 4, 0, 0, 0, 0, time.UTC))
	future := samltest.SelfSignedCert(t, idp.Key, now.AddDate(1, 0, 0), now.AddDate(4, 0, 0))
	notAzure := samltest.NewIdP(t, testTenant)
	notAzure.EntityID = "https://idp.example.com/saml"

	md := idp.Metadata(t)
	signed := signMetadata(t, md, idp)
	post := `<SingleSignOnService Binding="` + samltest.BindingHTTPPost + `" Location="` + idp.SSOURL + `"/>`
	if !bytes.Contains(md, []byte(post)) {
		t.Fatalf("samltest metadata has no %s", post)
	}
	redirect := strings.Replace(post, samltest.BindingHTTPPost, samltest.BindingHTTPRedirect, 1)
	noSigning := strings.ReplaceAll(string(md), `use="signing"`, `use="encryption"`)

	tests := []struct {
		name    string
		data    []byte
		codes   []string // sorted
		message string   // part of some message, or ""
	}{
		{"azure-like unsigned", md, []string{CodeUnsigned}, "not signed"},
		{"signed", signed, []string{CodeSignatureValid}, "signature is valid"},
		{"signed without BOM", bytes.TrimPrefix(signed, utf8BOM), []string{CodeSignatureValid}, ""},
		{"signed, then tampered", bytes.Replace(signed, []byte(idp.SSOURL), []byte("https://evil.example.com/saml2"), 1), []string{CodeSignatureInvalid}, "changed since Azure signed it"},
		{"signed, key info removed", removeKeyInfo(t, signed), []string{CodeSignatureInvalid}, "no certificate in its KeyInfo"},
		{"signed by another key", signMetadata(t, md, other), []string{CodeSignerUnknown}, "not one of the metadata's signing certificates"},
		{"empty", nil, []string{CodeEmpty}, "Azure sometimes hands out an empty Federation Metadata XML on the first download; download it again."},
		{"BOM and blanks", []byte("\ufeff \r\n"), []string{CodeEmpty}, "download it again"},
		{"truncated", md[:len(md)*2/3], []string{CodeTruncated}, "first download; download it again"},
		{"not XML", []byte("PK\x03\x04 a zip file"), []string{CodeNotXML}, "not XML"},
		{"UTF-16", []byte("\xff\xfe<\x00"), []string{CodeNotXML}, "UTF-16"},
		{"HTML sign-in page", []byte("<!DOCTYPE html>\n<html><head><title>Sign in to your account</title></head><body></body></html>"), []string{CodeNotMetadata}, "sign-in or error page"},
		{"DOCTYPE", []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>` + string(bytes.TrimPrefix(md, utf8BOM))[len(`<?xml version="1.0" encoding="utf-8"?>`):]), []string{CodeDoctype}, "DOCTYPE"},
		{"too large", append(bytes.Repeat([]byte(" "), MaxMetadataBytes), md...), []string{CodeTooLarge}, "larger than the 1 MiB"},
		{"SP metadata", readTestdata(t, "sp-metadata.xml"), []string{CodeNoIdPDescriptor}, "service-provider metadata"},
		{"no Redirect SSO", idp.MetadataWith(t, samltest.MetadataOptions{NoRedirectSSO: true}), []string{CodeNoRedirectSSO, CodeUnsigned}, "HTTP-Redirect"},
		{"no POST SSO", bytes.Replace(md, []byte(post), nil, 1), []string{CodeNoPostSSO, CodeUnsigned}, "HTTP-POST"},
		{"no SSO at all", bytes.Replace(bytes.Replace(md, []byte(post), nil, 1), []byte(redirect), nil, 1), []string{CodeNoPostSSO, CodeNoRedirectSSO, CodeUnsigned}, ""},
		{"no signing certificate", []byte(noSigning), []string{CodeNoSigningCert, CodeUnsigned}, "no signing certificate"},
		{"no signing certificate nor Redirect SSO", []byte(strings.Replace(noSigning, redirect, "", 1)), []string{CodeNoRedirectSSO, CodeNoSigningCert, CodeUnsigned}, ""},
		{"garbage certificate", bytes.ReplaceAll(md, []byte(certBase64(idp.Cert)), []byte("bm90IGEgY2VydGlmaWNhdGU=")), []string{CodeInvalidCert, CodeUnsigned}, "Signing certificate 1 cannot be read"},
		{"expired certificate", idp.MetadataWith(t, samltest.MetadataOptions{SigningCerts: []*x509.Certificate{expired}}), []string{CodeCertExpired, CodeUnsigned}, "expired on 4 January 2019"},
		{"key rollover, one expired", idp.MetadataWith(t, samltest.MetadataOptions{SigningCerts: []*x509.Certificate{expired, idp.Cert}}), []string{CodeCertExpired, CodeUnsigned}, "expired"},
		{"certificate not yet valid", idp.MetadataWith(t, samltest.MetadataOptions{SigningCerts: []*x509.Certificate{future}}), []string{CodeCertNotYetValid, CodeUnsigned}, "is not valid until " + future.NotBefore.UTC().Format(dateFormat)},
		{"not Azure", notAzure.Metadata(t), []string{CodeNotAzure, CodeUnsigned}, "not Azure AD; other identity providers are allowed"},
		{"no entityID", bytes.Replace(md, []byte(`entityID="`+idp.EntityID+`"`), nil, 1), []string{CodeNoEntityID, CodeUnsigned}, "no entityID"},
		{"bad endpoint URL", bytes.Replace(md, []byte(`Location="https://`), []byte(`Location="javascript://`), 1), []string{CodeInvalid, CodeUnsigned}, "invalid"},
		{"entities descriptor", readTestdata(t, "entities-metadata.xml"), []string{CodeUnsigned}, ""},
		{"placeholder signature", readTestdata(t, "azure-app-metadata.xml"), []string{CodeSignatureInvalid}, "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := ValidateMetadata(tt.data, now)
			if got := codes(fs); !slices.Equal(got, tt.codes) {
				t.Errorf("ValidateMetadata() codes = %q; want %q\nfindings: %v", got, tt.codes, fs)
			}
			if tt.message != "" && !slices.ContainsFunc(fs, func(f Finding) bool { return strings.Contains(f.Message, tt.message) }) {
				t.Errorf("ValidateMetadata() = %v; want a message containing %q", fs, tt.message)
			}
			checkAgreement(t, tt.data, fs)
			wantOK := !slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == SeverityError })
			if fs.OK() != wantOK {
				t.Errorf("Findings.OK() = %t; want %t", fs.OK(), wantOK)
			}
		})
	}
}

func certBase64(c *x509.Certificate) string {
	return samltest.Encode(c.Raw)
}

// removeKeyInfo returns signed metadata without the KeyInfo of its
// signature.
func removeKeyInfo(t *testing.T, data []byte) []byte {
	t.Helper()
	start := bytes.Index(data, []byte("<KeyInfo>"))
	end := bytes.Index(data, []byte("</KeyInfo>"))
	if start < 0 || end < 0 {
		t.Fatalf("removeKeyInfo: no <KeyInfo> in %s", data)
	}
	return append(append([]byte{}, data[:start]...), data[end+len("</KeyInfo>"):]...)
}

func TestValidateMetadataAzureFixture(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "..", "shared", "fixtures", "azure", "federation-metadata-1.xml")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if os.Getenv("CI") != "" {
			t.Fatalf("fixture %s is missing (CI is set): %v", path, err)
		}
		t.Skipf("fixture %s not found; it is required when CI is set", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	tenantLogin := "https://login.microsoftonline.com/8b966979-910b-487c-a604-69229b1ac75c/saml2"
	tests := []struct {
		name    string
		data    []byte
		now     time.Time
		codes   []string
		message string
	}{
		{"now", data, time.Now(), []string{CodeCertExpired, CodeCertExpired, CodeCertExpired, CodeSignatureValid}, "expired on 4 January 2019"},
		{"in 2018", data, time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC), []string{CodeSignatureValid}, "signature is valid"},
		{"in 2016", data, time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC), []string{CodeCertNotYetValid, CodeCertNotYetValid, CodeCertNotYetValid, CodeSignatureValid}, "not valid until 16 November 2016"},
		{"without BOM", bytes.TrimPrefix(data, utf8BOM), time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC), []string{CodeSignatureValid}, ""},
		{"tampered", bytes.Replace(data, []byte(tenantLogin), []byte("https://login.example.com/saml2"), 1), time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC), []string{CodeSignatureInvalid}, "changed since Azure signed it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := ValidateMetadata(tt.data, tt.now)
			if got := codes(fs); !slices.Equal(got, tt.codes) {
				t.Errorf("ValidateMetadata(%s) codes = %q; want %q\nfindings: %v", path, got, tt.codes, fs)
			}
			if tt.message != "" && !slices.ContainsFunc(fs, func(f Finding) bool { return strings.Contains(f.Message, tt.message) }) {
				t.Errorf("ValidateMetadata(%s) = %v; want a message containing %q", path, fs, tt.message)
			}
			checkAgreement(t, tt.data, fs)
		})
	}
}

func TestSeverityString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    Severity
		want string
	}{
		{SeverityInfo, "info"},
		{SeverityWarning, "warning"},
		{SeverityError, "error"},
		{Severity(7), "Severity(7)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Severity(%d).String() = %q; want %q", int(tt.s), got, tt.want)
		}
	}
}

func TestFindings(t *testing.T) {
	t.Parallel()
	fs := Findings{
		{SeverityInfo, CodeUnsigned, "The metadata is not signed."},
		{SeverityWarning, CodeCertExpired, "The certificate expired."},
	}
	if !fs.OK() {
		t.Errorf("%v.OK() = false; want true without an Error", fs)
	}
	if !fs.Has(CodeCertExpired) || fs.Has(CodeEmpty) {
		t.Errorf("%v.Has(%q, %q) = %t, %t; want true, false", fs, CodeCertExpired, CodeEmpty, fs.Has(CodeCertExpired), fs.Has(CodeEmpty))
	}
	fs = append(fs, Finding{SeverityError, CodeEmpty, "The file is empty."})
	if fs.OK() {
		t.Errorf("%v.OK() = true; want false with an Error", fs)
	}
	if got, want := fs[1].String(), "warning: The certificate expired."; got != want {
		t.Errorf("Finding.String() = %q; want %q", got, want)
	}
}
