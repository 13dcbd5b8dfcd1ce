package caddymodule

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

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
			app:         &App{logger: zap.NewNop(), now: time.Now, store: mem},
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
