package saml

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

const testTenant = "c0ffee00-1234-4abc-9def-0123456789ab"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseMetadataAzureFixture parses the real Azure AD tenant metadata kept
// in the shared fixtures folder beside the repository.
func TestParseMetadataAzureFixture(t *testing.T) {
	// The repository root is two levels up; shared is ../shared from it.
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
	if !bytes.HasPrefix(data, utf8BOM) {
		t.Fatalf("fixture %s does not start with a BOM; is it the right file?", path)
	}

	m, err := ParseMetadata(data)
	if err != nil {
		t.Fatalf("ParseMetadata(%s) error: %v", path, err)
	}
	const tenant = "8b966979-910b-487c-a604-69229b1ac75c"
	const login = "https://login.microsoftonline.com/" + tenant + "/saml2"
	checkMetadata(t, m, wantMetadata{
		entityID: "https://sts.windows.net/" + tenant + "/",
		redirect: login, post: login, slo: login,
		certs: 3,
	})
	if len(m.Descriptor.RoleDescriptors) != 2 {
		t.Errorf("len(Descriptor.RoleDescriptors) = %d; want the 2 WS-Fed RoleDescriptors", len(m.Descriptor.RoleDescriptors))
	}
}

type wantMetadata struct {
	entityID, redirect, post, slo string
	certs                         int
}

func checkMetadata(t *testing.T, m *IdPMetadata, want wantMetadata) {
	t.Helper()
	if m.EntityID != want.entityID {
		t.Errorf("EntityID = %q; want %q", m.EntityID, want.entityID)
	}
	if m.SSORedirectURL != want.redirect {
		t.Errorf("SSORedirectURL = %q; want %q", m.SSORedirectURL, want.redirect)
	}
	if m.SSOPostURL != want.post {
		t.Errorf("SSOPostURL = %q; want %q", m.SSOPostURL, want.post)
	}
	if m.SLORedirectURL != want.slo {
		t.Errorf("SLORedirectURL = %q; want %q", m.SLORedirectURL, want.slo)
	}
	if len(m.SigningCerts) != want.certs {
		t.Errorf("len(SigningCerts) = %d; want %d", len(m.SigningCerts), want.certs)
	}
	for i, a := range m.SigningCerts {
		for _, b := range m.SigningCerts[i+1:] {
			if a.Equal(b) {
				t.Errorf("SigningCerts holds %q twice", a.Subject)
			}
		}
	}
	if m.Descriptor == nil || m.Descriptor.EntityID != want.entityID {
		t.Errorf("Descriptor = %+v; want the EntityDescriptor of %q", m.Descriptor, want.entityID)
	}
}

func TestParseMetadata(t *testing.T) {
	t.Parallel()
	idp := samltest.NewIdP(t, testTenant)
	rolled := samltest.NewIdP(t, testTenant)
	login := "https://login.microsoftonline.com/" + testTenant + "/saml2"
	entityID := "https://sts.windows.net/" + testTenant + "/"
	tests := []struct {
		name string
		data []byte
		want wantMetadata
	}{
		{"azure app", readTestdata(t, "azure-app-metadata.xml"), wantMetadata{entityID, login, login, login, 1}},
		{"azure tenant", readTestdata(t, "azure-tenant-metadata.xml"), wantMetadata{entityID, login, login, login, 3}},
		{"entities descriptor", readTestdata(t, "entities-metadata.xml"), wantMetadata{entityID, login, login, login, 1}},
		{"nested EntitiesDescriptor", nested(t, readTestdata(t, "entities-metadata.xml")), wantMetadata{entityID, login, login, login, 1}},
		{"samltest", idp.Metadata(t), wantMetadata{entityID, login, login, login, 1}},
		{"samltest without BOM", idp.MetadataWith(t, samltest.MetadataOptions{NoBOM: true}), wantMetadata{entityID, login, login, login, 1}},
		{"key rollover", idp.MetadataWith(t, samltest.MetadataOptions{SigningCerts: []*x509.Certificate{idp.Cert, rolled.Cert}}), wantMetadata{entityID, login, login, login, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMetadata(tt.data)
			if err != nil {
				t.Fatalf("ParseMetadata() error: %v", err)
			}
			checkMetadata(t, m, tt.want)
		})
	}
}

// nested wraps the EntitiesDescriptor document data in another one, after
// an SP entity.
func nested(t *testing.T, data []byte) []byte {
	t.Helper()
	const decl = `<?xml version="1.0" encoding="utf-8"?>`
	inner := strings.TrimPrefix(string(data), decl)
	sp := strings.TrimPrefix(string(readTestdata(t, "sp-metadata.xml")), decl)
	return []byte(decl + `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + sp + inner + `</EntitiesDescriptor>`)
}

func TestParseMetadataIgnoresNonSigningCerts(t *testing.T) {
	t.Parallel()
	data := readTestdata(t, "azure-tenant-metadata.xml")
	m, err := ParseMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	// The fourth certificate of the file is in a WS-Fed RoleDescriptor and
	// an encryption KeyDescriptor only.
	rd := m.Descriptor.RoleDescriptors[0].KeyDescriptors
	fourth, err := parseCertificate(rd[len(rd)-1].KeyInfo.X509Data.X509Certificates[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if containsCert(m.SigningCerts, fourth) {
		t.Errorf("SigningCerts holds the certificate that is not an IDPSSODescriptor signing key")
	}
}

func TestParseMetadataErrors(t *testing.T) {
	t.Parallel()
	app := string(readTestdata(t, "azure-app-metadata.xml"))
	idp := samltest.NewIdP(t, testTenant)
	certB64 := app[strings.Index(app, "<X509Certificate>")+len("<X509Certificate>") : strings.Index(app, "</X509Certificate>")]
	tests := []struct {
		name    string
		data    string
		kind    error
		message string // a part of the error message
	}{
		{"empty", "", ErrMetadataEmpty, "metadata is empty"},
		{"only BOM and space", "\ufeff \n", ErrMetadataEmpty, "metadata is empty"},
		{"too large", "<x>" + strings.Repeat(" ", MaxMetadataBytes) + "</x>", ErrMetadataTooLarge, "larger than 1 MiB"},
		{"truncated", app[:len(app)/2], ErrMetadataNotXML, "metadata is truncated or not well-formed XML: unexpected EOF (line 1)"},
		{"not XML", "this is not XML at all", ErrMetadataNotXML, `metadata is not XML: it starts with "this is not XML at all"`},
		{"JSON", `{"error":"invalid_tenant"}`, ErrMetadataNotXML, `metadata is not XML: it starts with "{\"error\":\"invalid_tenant\"}"`},
		{"mismatched tags", "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\">\n<a></b></EntityDescriptor>", ErrMetadataNotXML, "(line 2)"},
		{"UTF-16", "\xff\xfe<\x00", ErrMetadataNotXML, "UTF-16"},
		{"HTML error page", "<html><head><title>404</title></head><body><p>Not found<br></body></html>", ErrNotMetadata, "it is an HTML page"},
		{"HTML doctype", "<!DOCTYPE html>\n<html><body>Sign in</body></html>", ErrNotMetadata, "it is an HTML page"},
		{"DOCTYPE XXE", `<?xml version="1.0"?><!DOCTYPE EntityDescriptor [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;"/>`, ErrMetadataDoctype, "metadata has a DOCTYPE declaration"},
		{"DOCTYPE billion laughs", `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">&lol2;</EntityDescriptor>`, ErrMetadataDoctype, "DOCTYPE"},
		{"other root", `<foo/>`, ErrNotMetadata, "document is not SAML metadata: root element is <foo>"},
		{"EntityDescriptor in wrong namespace", `<EntityDescriptor xmlns="urn:example" entityID="x"/>`, ErrNotMetadata, `root element is <EntityDescriptor> in namespace "urn:example"`},
		{"SAML response", string(idp.Response(t, samltest.ResponseOptions{})), ErrNotMetadata, "root element is <Response>"},
		{"SP metadata", string(readTestdata(t, "sp-metadata.xml")), ErrNoIdPDescriptor, "no IDPSSODescriptor: this is not identity-provider metadata (it is service-provider metadata)"},
		{"EntitiesDescriptor without IdP", `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + strings.TrimPrefix(string(readTestdata(t, "sp-metadata.xml")), `<?xml version="1.0" encoding="utf-8"?>`) + `</EntitiesDescriptor>`, ErrNoIdPDescriptor, "none of the entities"},
		{"IDPSSODescriptor for SAML 1.1", strings.Replace(app, `<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">`, `<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:1.1:protocol">`, 1), ErrNoIdPDescriptor, "does not support the SAML 2.0 protocol"},
		{"no Redirect SSO", string(idp.MetadataWith(t, samltest.MetadataOptions{NoRedirectSSO: true})), ErrNoRedirectSSO, "no SingleSignOnService with the HTTP-Redirect binding"},
		{"no signing cert", strings.ReplaceAll(app, `<KeyDescriptor use="signing">`, `<KeyDescriptor use="encryption">`), ErrNoSigningCert, "no signing certificate in the IDPSSODescriptor"},
		{"garbage cert", replaceNth(app, certB64, "bm90IGEgY2VydGlmaWNhdGU=", 4), ErrInvalidCert, "signing certificate 1 is not a valid X.509 certificate: bad DER"},
		{"bad base64 cert", replaceNth(app, certB64, "!!!", 4), ErrInvalidCert, "signing certificate 1 is not a valid X.509 certificate: bad base64"},
		{"no entityID", strings.Replace(app, `entityID="https://sts.windows.net/`+testTenant+`/"`, "", 1), ErrMetadataInvalid, "no entityID"},
		{"bad endpoint URL", strings.Replace(app, `<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://`, `<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="javascript://`, 1), ErrMetadataInvalid, "metadata is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMetadata([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseMetadata() = %+v; want an error matching %v", m, tt.kind)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("ParseMetadata() error = %q; want one matching %q", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("ParseMetadata() error = %q; want it to contain %q", err, tt.message)
			}
		})
	}
}

// replaceNth replaces the nth (1-based) occurrence of old in s with new.
func replaceNth(s, old, new string, n int) string {
	i := 0
	for ; n > 1; n-- {
		j := strings.Index(s[i:], old)
		if j < 0 {
			return s
		}
		i += j + len(old)
	}
	return s[:i] + strings.Replace(s[i:], old, new, 1)
}

func TestLoadMetadata(t *testing.T) {
	t.Parallel()
	want := readTestdata(t, "azure-app-metadata.xml")
	mux := http.NewServeMux()
	mux.HandleFunc("/metadata", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(want)
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte(" "), MaxMetadataBytes+1))
	})
	mux.HandleFunc("/missing", http.NotFound)
	srv := httptest.NewServer(mux) // 127.0.0.1: plain http is allowed for loopback
	t.Cleanup(srv.Close)
	tlsSrv := httptest.NewUnstartedServer(mux)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the "untrusted TLS" case fails handshakes
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	tests := []struct {
		name    string
		client  *http.Client
		source  string
		kind    error  // nil for success
		message string // a part of the error message
	}{
		{name: "file", source: filepath.Join("testdata", "azure-app-metadata.xml")},
		{name: "loopback http", client: srv.Client(), source: srv.URL + "/metadata"},
		{name: "https", client: tlsSrv.Client(), source: tlsSrv.URL + "/metadata"},
		{name: "missing file", source: filepath.Join("testdata", "nope.xml"), kind: os.ErrNotExist, message: "nope.xml"},
		{name: "empty source", source: " ", kind: ErrMetadataFetch, message: "no file or URL given"},
		{name: "404", client: srv.Client(), source: srv.URL + "/missing", kind: ErrMetadataFetch, message: "the server answered 404 Not Found"},
		{name: "too large", client: srv.Client(), source: srv.URL + "/large", kind: ErrMetadataTooLarge, message: "larger than 1 MiB"},
		{name: "plain http", source: "http://login.example.com/metadata", kind: ErrMetadataFetch, message: "plain http is refused"},
		{name: "ftp", source: "ftp://example.com/metadata", kind: ErrMetadataFetch, message: `unsupported URL scheme "ftp"`},
		{name: "untrusted TLS", client: &http.Client{}, source: tlsSrv.URL + "/metadata", kind: ErrMetadataFetch, message: "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := LoadMetadata(context.Background(), tt.client, tt.source)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("LoadMetadata(%q) error: %v", tt.source, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("LoadMetadata(%q) = %d bytes; want the %d bytes of the document", tt.source, len(got), len(want))
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadMetadata(%q) = %d bytes; want an error matching %v", tt.source, len(got), tt.kind)
			}
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("LoadMetadata(%q) error = %q; want one matching %v and containing %q", tt.source, err, tt.kind, tt.message)
			}
		})
	}
}

func TestLoadMetadataContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, source := range []string{"https://login.example.com/metadata", filepath.Join("testdata", "azure-app-metadata.xml")} {
		if _, err := LoadMetadata(ctx, nil, source); !errors.Is(err, context.Canceled) {
			t.Errorf("LoadMetadata(canceled, %q) error = %v; want context.Canceled", source, err)
		}
	}
}
