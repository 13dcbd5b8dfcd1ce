package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI adds engage-sso's commands to Caddy's admin endpoint
// (localhost:2019 by default, which only local processes reach):
//
//	POST /engage_sso/rotate-key   rotate the shared token signing key now
//
// The rotation reaches every instance sharing the store within 30 seconds;
// the previous key stays in the JWKS until its tokens have expired.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.engage_sso",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/engage_sso/rotate-key", Handler: caddy.AdminHandlerFunc(rotateKeyCommand)}}
}

func rotateKeyCommand(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("use POST")}
	}
	appIface, err := caddy.ActiveContext().AppIfConfigured("engage_sso")
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("engage_sso is not configured: %w", err)}
	}
	app, ok := appIface.(*App)
	if !ok || app.keys == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("engage_sso is not running")}
	}
	if err := app.RotateKey(r.Context()); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]string{"kid": app.keys.Current().ID})
}

var _ caddy.AdminRouter = adminAPI{}
