package caddymodule

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/internal/devidp"
)

// Signed metadata that was changed after signing is refused; the same
// file untouched is accepted.
func TestSetMetadataRefusesAlteredSignedMetadata(t *testing.T) {
	idp, err := devidp.New(devidp.Config{BaseURL: "http://localhost:9001"})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	mem := session.NewMemory(session.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	newProv := func() *provider {
		return &provider{
			cfg:         &Provider{Label: "contoso"},
			app:         &App{logger: zap.NewNop(), now: time.Now, store: mem, metadataMu: new(sync.Mutex)},
			entityID:    "http://localhost:8080/sso/saml/contoso",
			acsURL:      "http://localhost:8080/sso/saml/contoso/acs",
			metadataURL: "http://localhost:8080/sso/saml/contoso/metadata",
		}
	}
	if err := newProv().setMetadata(signed); err != nil {
		t.Fatalf("setMetadata(signed) = %v; want it accepted", err)
	}
	altered := bytes.Replace(signed, []byte("http://localhost:9001/"), []byte("http://evil.example:9001/"), 1)
	if bytes.Equal(altered, signed) {
		t.Fatal("the test did not change the metadata")
	}
	p := newProv()
	err = p.setMetadata(altered)
	if err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Errorf("setMetadata(altered) = %v; want a refusal naming the signature", err)
	}
	if sp, _ := p.ready(); sp != nil {
		t.Error("an SP was built from altered metadata")
	}
}

// Certificate rollover through metadata_url: while the IdP publishes two
// signing certificates, responses signed with either are accepted; after a
// refresh that drops one, responses signed with it are refused.
func TestMetadataRefreshDropsACertificate(t *testing.T) {
	oldIdP := samltest.NewIdP(t, "0a1b2c3d-0000-4000-8000-00000000f00d")
	newIdP := samltest.NewIdP(t, "0a1b2c3d-0000-4000-8000-00000000f00d")
	var published atomic.Value
	published.Store(oldIdP.MetadataWith(t, samltest.MetadataOptions{SigningCerts: []*x509.Certificate{oldIdP.Cert, newIdP.Cert}}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(published.Load().([]byte))
	}))
	t.Cleanup(srv.Close)

	mem := session.NewMemory(session.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	p := &provider{
		cfg:         &Provider{Label: "rollover", MetadataURL: srv.URL},
		app:         &App{logger: zap.NewNop(), now: time.Now, store: mem, metadataMu: new(sync.Mutex)},
		entityID:    "http://localhost:8080/sso/saml/rollover",
		acsURL:      "http://localhost:8080/sso/saml/rollover/acs",
		metadataURL: "http://localhost:8080/sso/saml/rollover/metadata",
	}
	parse := func(signer *samltest.IdP) error {
		sp, why := p.ready()
		if sp == nil {
			t.Fatalf("provider not ready: %s", why)
		}
		resp := signer.Response(t, samltest.ResponseOptions{Destination: p.acsURL, Audience: p.entityID})
		_, err := sp.ParseResponse(context.Background(), samltest.Encode(resp), nil)
		return err
	}
	if err := p.fetchOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, signer := range map[string]*samltest.IdP{"old": oldIdP, "new": newIdP} {
		if err := parse(signer); err != nil {
			t.Errorf("both certificates published: response signed with the %s key refused: %v", name, err)
		}
	}
	published.Store(newIdP.MetadataWith(t, samltest.MetadataOptions{SigningCerts: []*x509.Certificate{newIdP.Cert}}))
	if err := p.fetchOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := parse(newIdP); err != nil {
		t.Errorf("after the refresh, response signed with the new key refused: %v", err)
	}
	if err := parse(oldIdP); samlsp.ReasonOf(err) != samlsp.ReasonUntrustedCert {
		t.Errorf("after the refresh dropped the old certificate, its response = %v; want %s", err, samlsp.ReasonUntrustedCert)
	}
}
