package devidp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
)

func TestMetadata(t *testing.T) {
	t.Parallel()
	idp := newTestIdP(t, Config{})
	want, err := idp.Metadata()
	if err != nil {
		t.Fatalf("Metadata() error: %v", err)
	}
	tenantPath := "/" + DemoTenantID + "/federationmetadata/2007-06/federationmetadata.xml"
	if got, want := idp.MetadataURL(), idp.http.URL+tenantPath; got != want {
		t.Errorf("MetadataURL() = %q; want %q", got, want)
	}

	for _, path := range []string{"/metadata", tenantPath, tenantPath + "?appid=6a8e1d2c-0000-4000-8000-000000000000"} {
		t.Run(path, func(t *testing.T) {
			resp, err := idp.client.Get(idp.url(path))
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			status, body := readBody(t, resp)
			if status != http.StatusOK {
				t.Fatalf("GET %s status = %d; want 200", path, status)
			}
			if got, want := resp.Header.Get("Content-Type"), "application/samlmetadata+xml"; got != want {
				t.Errorf("GET %s Content-Type = %q; want %q", path, got, want)
			}
			if body != string(want) {
				t.Errorf("GET %s body differs from Metadata()", path)
			}
		})
	}

	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(want, &ed); err != nil {
		t.Fatalf("unmarshal metadata: %v", err)
	}
	if got, want := ed.EntityID, "https://sts.windows.net/"+DemoTenantID+"/"; got != want {
		t.Errorf("entityID = %q; want %q", got, want)
	}
	if got := idp.EntityID(); got != ed.EntityID {
		t.Errorf("EntityID() = %q; want %q", got, ed.EntityID)
	}
	if ed.ID == "" || ed.Signature == nil {
		t.Errorf("metadata ID = %q, signed = %t; want an ID and a signature", ed.ID, ed.Signature != nil)
	}
	if !ed.ValidUntil.IsZero() {
		t.Errorf("validUntil = %v; want none, as Azure", ed.ValidUntil)
	}
	if len(ed.IDPSSODescriptors) != 1 {
		t.Fatalf("%d IDPSSODescriptors; want 1", len(ed.IDPSSODescriptors))
	}
	d := ed.IDPSSODescriptors[0]
	sso := idp.http.URL + "/" + DemoTenantID + "/saml2"
	wantSSO := []saml.Endpoint{
		{Binding: saml.HTTPRedirectBinding, Location: sso},
		{Binding: saml.HTTPPostBinding, Location: sso},
	}
	if len(d.SingleSignOnServices) != len(wantSSO) {
		t.Fatalf("SingleSignOnServices = %+v; want %+v", d.SingleSignOnServices, wantSSO)
	}
	for i, w := range wantSSO {
		if got := d.SingleSignOnServices[i]; got.Binding != w.Binding || got.Location != w.Location {
			t.Errorf("SingleSignOnServices[%d] = %s %s; want %s %s", i, got.Binding, got.Location, w.Binding, w.Location)
		}
	}
	if len(d.KeyDescriptors) != 1 {
		t.Fatalf("%d KeyDescriptors; want 1 (signing)", len(d.KeyDescriptors))
	}
	kd := d.KeyDescriptors[0]
	if kd.Use != "signing" || len(kd.KeyInfo.X509Data.X509Certificates) != 1 {
		t.Fatalf("KeyDescriptor use = %q with %d certificates; want signing with 1", kd.Use, len(kd.KeyInfo.X509Data.X509Certificates))
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(kd.KeyInfo.X509Data.X509Certificates[0].Data), ""))
	if err != nil {
		t.Fatalf("decode certificate: %v", err)
	}
	if !bytes.Equal(der, idp.Certificate().Raw) {
		t.Errorf("metadata certificate is not Certificate()")
	}
	if _, err := saml.VerifyMetadataSignature(want, []*x509.Certificate{idp.Certificate()}); err != nil {
		t.Errorf("VerifyMetadataSignature: %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	now := testEpoch
	s, err := New(Config{BaseURL: "http://localhost:9001/", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, want := s.EntityID(), "https://sts.windows.net/"+DemoTenantID+"/"; got != want {
		t.Errorf("EntityID() = %q; want %q", got, want)
	}
	if got, want := s.SSOURL(), "http://localhost:9001/"+DemoTenantID+"/saml2"; got != want {
		t.Errorf("SSOURL() = %q; want %q", got, want)
	}
	if got, want := s.MyAppsURL(), "http://localhost:9001/myapps"; got != want {
		t.Errorf("MyAppsURL() = %q; want %q", got, want)
	}
	cert := s.Certificate()
	if got, want := cert.Subject.String(), "CN=engage-sso dev IdP (not Azure)"; got != want {
		t.Errorf("certificate subject = %q; want %q", got, want)
	}
	if got, want := cert.NotAfter.Sub(now), 3*365*24*time.Hour; got != want {
		t.Errorf("certificate valid for %v after now; want %v", got, want)
	}
	if cert.NotBefore.After(now) {
		t.Errorf("certificate NotBefore = %v; want before %v", cert.NotBefore, now)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 2048 {
		t.Errorf("certificate key is %T; want RSA-2048", cert.PublicKey)
	}
	if got, want := len(s.users.users), len(DemoUsers()); got != want {
		t.Errorf("%d users; want the %d demo users", got, want)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	kp := mustKeys(t, idpKeys)
	other := mustKeys(t, spKeys)
	base := func(f func(*Config)) Config {
		cfg := Config{BaseURL: "http://localhost:9001", Key: kp.key, Certificate: kp.cert}
		f(&cfg)
		return cfg
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no base url", base(func(c *Config) { c.BaseURL = "" }), "base url: required"},
		{"relative base url", base(func(c *Config) { c.BaseURL = "/idp" }), "not an absolute http or https URL"},
		{"ftp base url", base(func(c *Config) { c.BaseURL = "ftp://localhost" }), "not an absolute http or https URL"},
		{"base url with query", base(func(c *Config) { c.BaseURL = "http://localhost:9001/?a=b" }), "must not have"},
		{"base url with pattern path", base(func(c *Config) { c.BaseURL = "http://localhost:9001/{x}" }), "unsupported path"},
		{"tenant not a guid", base(func(c *Config) { c.TenantID = "contoso.onmicrosoft.com" }), "is not a GUID"},
		{"no users", base(func(c *Config) { c.Users = []User{} }), "no users"},
		{"user without email", base(func(c *Config) { c.Users = []User{{Password: "p", ObjectID: "1"}} }), "not an email address"},
		{"user without password", base(func(c *Config) { c.Users = []User{{Email: "a@b.c", ObjectID: "1"}} }), "password is empty"},
		{"user without object id", base(func(c *Config) { c.Users = []User{{Email: "a@b.c", Password: "p"}} }), "object id is empty"},
		{"duplicate email", base(func(c *Config) {
			c.Users = []User{{Email: "a@b.c", Password: "p", ObjectID: "1"}, {Email: "A@B.C", Password: "p", ObjectID: "2"}}
		}), "duplicate email"},
		{"duplicate object id", base(func(c *Config) {
			c.Users = []User{{Email: "a@b.c", Password: "p", ObjectID: "1"}, {Email: "d@b.c", Password: "p", ObjectID: "1"}}
		}), "duplicate object id"},
		{"relative sp url", base(func(c *Config) { c.ServiceProviders = []string{"/sso/saml/contoso/metadata"} }), "not an absolute http or https URL"},
		{"key without certificate", base(func(c *Config) { c.Certificate = nil }), "must be set together"},
		{"certificate of another key", base(func(c *Config) { c.Certificate = other.cert }), "does not match the key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() = %v, %v; want an error containing %q", s, err, tt.want)
			}
		})
	}
}

func TestBasePath(t *testing.T) {
	t.Parallel()
	kp := mustKeys(t, idpKeys)
	s, err := New(Config{BaseURL: "http://localhost:9001/idp/", Key: kp.key, Certificate: kp.cert, Rand: rand.Reader})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, want := s.MetadataURL(), "http://localhost:9001/idp/"+DemoTenantID+"/federationmetadata/2007-06/federationmetadata.xml"; got != want {
		t.Errorf("MetadataURL() = %q; want %q", got, want)
	}
	tests := []struct {
		path string
		want int
	}{
		{"/idp/", http.StatusOK},
		{"/idp/metadata", http.StatusOK},
		{"/idp/myapps", http.StatusOK},
		{"/idp/" + DemoTenantID + "/federationmetadata/2007-06/federationmetadata.xml", http.StatusOK},
		{"/metadata", http.StatusNotFound},
		{"/idp/nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if w.Code != tt.want {
			t.Errorf("GET %s status = %d; want %d", tt.path, w.Code, tt.want)
		}
	}
}

func TestPages(t *testing.T) {
	t.Parallel()
	idp := newTestIdP(t, Config{ServiceProviders: []string{"http://127.0.0.1:1/metadata"}})
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/", http.StatusOK, []string{"Local development IdP — not Azure", idp.MetadataURL(), idp.EntityID(),
			"/myapps", "http://127.0.0.1:1/metadata", thumbprint(idp.Certificate())}},
		{"/myapps", http.StatusOK, []string{"My Apps", "Metadata unavailable", "http://127.0.0.1:1/metadata"}},
		{"/no/such/page", http.StatusNotFound, []string{"Page not found", "correlation ID"}},
		{"/" + DemoTenantID + "/saml2", http.StatusBadRequest, []string{"Invalid request"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := idp.client.Get(idp.url(tt.path))
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			status, body := readBody(t, resp)
			if status != tt.status {
				t.Errorf("GET %s status = %d; want %d", tt.path, status, tt.status)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != pageCSP {
				t.Errorf("GET %s Content-Security-Policy = %q; want %q", tt.path, got, pageCSP)
			}
			body = html.UnescapeString(body)
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s body does not contain %q", tt.path, w)
				}
			}
			for _, u := range DemoUsers() {
				if status == http.StatusOK && !strings.Contains(body, u.Email) {
					t.Errorf("GET %s body does not list user %q", tt.path, u.Email)
				}
			}
		})
	}
}
