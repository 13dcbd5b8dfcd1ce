package caddymodule

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
)

// TestAdminRotateKeyCommand runs a real Caddy with the engage_sso app and
// rotates the signing key through the admin endpoint.
func TestAdminRotateKeyCommand(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`{
		"admin": {"listen": %q},
		"storage": {"module": "file_system", "root": %q},
		"apps": {"engage_sso": {"store": {"backend": "memory", "persist": false}}}
	}`, admin, t.TempDir())
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatalf("loading Caddy: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	appIface, err := caddy.ActiveContext().App("engage_sso")
	if err != nil {
		t.Fatal(err)
	}
	before := appIface.(*App).keys.Current().ID

	resp, err := http.Get("http://" + admin + "/engage_sso/rotate-key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET rotate-key = %d; want 405", resp.StatusCode)
	}

	resp, err = http.Post("http://"+admin+"/engage_sso/rotate-key", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Kid string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST rotate-key = %d, %v", resp.StatusCode, err)
	}
	after := appIface.(*App).keys.Current().ID
	if body.Kid != after || after == before {
		t.Errorf("rotate-key answered kid %q; the app signs with %q (before: %q); want a new key", body.Kid, after, before)
	}
	if ks := kids(t, appIface.(*App).keys.JWKS()); !ks[before] || !ks[after] {
		t.Errorf("JWKS after rotation = %v; want the previous and the new key", ks)
	}
}
