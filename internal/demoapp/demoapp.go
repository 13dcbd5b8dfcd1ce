// Package demoapp is a stand-in for the Engage web application behind
// engage-sso. It trusts nothing but the signed identity token: every request
// goes through engageauth's middleware, and the pages show the verified
// identity, so a demo or an end-to-end test can see exactly what the upstream
// receives.
//
// It also owns the user accounts, as Engage does, and implements the user
// hook (docs/upstream-api.md) under /hook/, through which engage-sso finds,
// creates and updates users; account holders see their company's users at
// /users. Hook requests carry their own bearer token, verified with a second
// verifier whose audience is "user-hook", so identity tokens never open the
// hook nor hook tokens the pages.
//
// The users live in one JSON file (Config.DataFile), or in memory when none
// is configured. The file is rewritten whole on every change: written to a
// temporary file in the same directory, synced, renamed over the old one and
// the directory synced, so a crash leaves the old or the new file, never a
// torn one. That is the whole database, on purpose: it needs no cgo and no
// dependency (SQLite would need one or the other), and a demo holds a handful
// of users, so rewriting the file per change and scanning the users per
// lookup cost nothing. A real upstream keeps its users in its own database.
package demoapp

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

//go:embed *.html.tmpl
var templateFiles embed.FS

// templates are parsed once; templates are safe for concurrent execution.
var templates = template.Must(template.ParseFS(templateFiles, "*.html.tmpl"))

// Config configures the demo application.
type Config struct {
	// Verifier verifies the identity token of every request. Required.
	Verifier *engageauth.Verifier

	// HookVerifier verifies the bearer token of user hook requests (under
	// /hook/). Its audience must differ from Verifier's: "user-hook" by
	// convention (DefaultHookAudience). Nil disables the hook.
	HookVerifier *engageauth.Verifier

	// DataFile is the JSON file the users are kept in. It is created at the
	// first change. Empty keeps them in memory, lost at exit.
	DataFile string

	// Logger receives one record per request served and any rendering
	// errors. Default: discard.
	Logger *slog.Logger

	// Now returns the current time. Default: time.Now.
	Now func() time.Time

	// Rand is the source of user ids. Default: crypto/rand.Reader.
	Rand io.Reader
}

// New returns the demo application's handler.
//
// Routes behind the identity middleware (401 without a valid token):
//
//	GET /api/me  the identity as JSON
//	GET /users   the company's users, for account holders (403 for others)
//	GET /...     an HTML page showing the identity and the path requested
//
// and, with a HookVerifier, the user hook under /hook/ behind its own bearer
// token check (see hook.ServeHTTP).
func New(cfg Config) (http.Handler, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("demoapp: no identity verifier configured")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now, random := cfg.Now, cfg.Rand
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Reader
	}
	st, err := openStore(cfg.DataFile, now, random)
	if err != nil {
		return nil, err
	}
	a := &app{header: cfg.Verifier.Header(), logger: logger, store: st}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/me", a.me)
	mux.HandleFunc("GET /users", a.users)
	mux.HandleFunc("GET /", a.page)
	root := http.NewServeMux()
	root.Handle("/", cfg.Verifier.Middleware(mux))
	if cfg.HookVerifier != nil {
		root.Handle("/hook/", &hook{verifier: cfg.HookVerifier, store: st, logger: logger})
	}
	return root, nil
}

type app struct {
	header string // canonical identity header name
	logger *slog.Logger
	store  *store
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
	if err := templates.ExecuteTemplate(&buf, "page.html.tmpl", data); err != nil {
		a.logger.ErrorContext(r.Context(), "demoapp: rendering page", slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.log(r, id)
	writeHTML(w, http.StatusOK, buf.Bytes())
}

// writeHTML writes an HTML page with the demo's security headers.
func writeHTML(w http.ResponseWriter, status int, page []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(page)
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
