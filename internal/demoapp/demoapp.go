// Package demoapp is a stand-in for the Engage web application behind
// engage-sso. It trusts nothing but the signed identity token: every request
// goes through engageauth's middleware, and the pages show the verified
// identity, so a demo or an end-to-end test can see exactly what the upstream
// receives.
package demoapp

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

//go:embed page.html.tmpl
var pageSource string

// pageTemplate is parsed once; templates are safe for concurrent execution.
var pageTemplate = template.Must(template.New("page").Parse(pageSource))

// Config configures the demo application.
type Config struct {
	// Verifier verifies the identity token of every request. Required.
	Verifier *engageauth.Verifier

	// Logger receives one record per request served and any rendering
	// errors. Default: discard.
	Logger *slog.Logger
}

// New returns the demo application's handler.
//
// Routes, all behind the identity middleware (401 without a valid token):
//
//	GET /api/me  the identity as JSON
//	GET /...     an HTML page showing the identity and the path requested
func New(cfg Config) (http.Handler, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("demoapp: no identity verifier configured")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &app{header: cfg.Verifier.Header(), logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/me", a.me)
	mux.HandleFunc("GET /", a.page)
	return cfg.Verifier.Middleware(mux), nil
}

type app struct {
	header string // canonical identity header name
	logger *slog.Logger
}

// pageData is what page.html.tmpl renders.
type pageData struct {
	Identity       *engageauth.Identity
	RoleLabel      string
	Path           string
	Query          string
	IdentityHeader string
	HeaderCount    int
	IssuedAt       string
	ExpiresAt      string
}

func (a *app) page(w http.ResponseWriter, r *http.Request) {
	id, ok := engageauth.FromContext(r.Context())
	if !ok {
		// Unreachable behind the middleware; fail closed all the same.
		http.Error(w, "no identity", http.StatusUnauthorized)
		return
	}
	data := pageData{
		Identity:       id,
		RoleLabel:      RoleLabel(id.Role),
		Path:           r.URL.Path,
		Query:          r.URL.RawQuery,
		IdentityHeader: a.header,
		HeaderCount:    CountHeader(r.Header, a.header),
		IssuedAt:       formatTime(id.IssuedAt),
		ExpiresAt:      formatTime(id.ExpiresAt),
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		a.logger.ErrorContext(r.Context(), "demoapp: rendering page", slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.log(r, id)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	_, _ = w.Write(buf.Bytes())
}

func (a *app) me(w http.ResponseWriter, r *http.Request) {
	id, ok := engageauth.FromContext(r.Context())
	if !ok {
		http.Error(w, "no identity", http.StatusUnauthorized)
		return
	}
	body, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		a.logger.ErrorContext(r.Context(), "demoapp: encoding identity", slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.log(r, id)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(append(body, '\n'))
}

func (a *app) log(r *http.Request, id *engageauth.Identity) {
	a.logger.LogAttrs(r.Context(), slog.LevelInfo, "demoapp: request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("user_id", id.UserID),
		slog.String("role", id.Role),
		slog.String("company", id.Company),
	)
}

// RoleLabel returns the human name of a role claim.
func RoleLabel(role string) string {
	switch role {
	case engageauth.RoleAgent:
		return "Agent"
	case engageauth.RoleSupervisor:
		return "Supervisor"
	case engageauth.RoleAccountHolder:
		return "Account holder"
	}
	return "Unknown role"
}

// CountHeader returns how many values of the header name h carries, counting
// every spelling that a lenient proxy or application might treat as the same
// header: any letter case, and '_' in place of '-'.
func CountHeader(h http.Header, name string) int {
	want := normalizeHeaderName(name)
	n := 0
	for key, values := range h {
		if normalizeHeaderName(key) == want {
			n += len(values)
		}
	}
	return n
}

func normalizeHeaderName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(time.RFC3339)
}
