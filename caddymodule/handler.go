package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/engage-sso/engage-sso/caddymodule/identity"
	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/caddymodule/token"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the `engage_sso` HTTP handler. It serves the sign-in endpoints
// under /sso/ and lets through only requests with a valid session, adding a
// signed identity token for the upstream. Identity headers sent by the
// client are always removed first.
//
// Place it before reverse_proxy (the Caddyfile directive is ordered so).
type Handler struct {
	// Header is the request header that carries the identity token (JWT)
	// upstream. Default "X-Engage-Identity". Any header of this name, or
	// starting with "X-Engage-", sent by the client is removed, whatever its
	// case and whether it is written with '_' or '-'.
	Header string `json:"header,omitempty"`

	// PlainHeaders, when true, also sends the identity as plain headers
	// (X-Engage-User-Id, X-Engage-Email, X-Engage-Role, X-Engage-Company,
	// X-Engage-Provider) for upstreams that trust the proxy network instead
	// of verifying the token.
	PlainHeaders bool `json:"plain_headers,omitempty"`

	app    *App
	logger *zap.Logger
	header string
}

// The routes the handler serves itself.
const (
	ssoPrefix = "/sso/"
	jwksPath  = "/sso/.well-known/jwks.json"
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.engage_sso",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision connects the handler to the engage_sso app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.App("engage_sso")
	if err != nil {
		return fmt.Errorf("getting engage_sso app: %w", err)
	}
	h.app = appIface.(*App)
	if len(h.app.Companies) == 0 {
		return errors.New("no company is configured: add an engage_sso global option block with at least one company and provider")
	}
	h.header = textproto.CanonicalMIMEHeaderKey(h.Header)
	if h.header == "" {
		h.header = "X-Engage-Identity"
	}
	return nil
}

// Validate checks the handler's configuration.
func (h *Handler) Validate() error {
	if h.Header != "" && !validHeaderName(h.Header) {
		return fmt.Errorf("header: %q is not a valid header name", h.Header)
	}
	return nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s != ""
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.stripIdentityHeaders(r.Header)
	if strings.HasPrefix(r.URL.Path, ssoPrefix) {
		return h.serveSSO(w, r)
	}

	sess, err := h.currentSession(r)
	if err != nil {
		return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
	}
	if sess == nil {
		return h.unauthenticated(w, r)
	}

	jwt, err := h.identityToken(sess)
	if err != nil {
		return h.fail(w, r, http.StatusInternalServerError, "token_error", err)
	}
	r.Header.Set(h.header, jwt)
	if h.PlainHeaders {
		r.Header.Set("X-Engage-User-Id", sess.UserID)
		r.Header.Set("X-Engage-Email", sess.Email)
		r.Header.Set("X-Engage-Role", sess.Role)
		r.Header.Set("X-Engage-Company", sess.Company)
		r.Header.Set("X-Engage-Provider", sess.Provider)
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.user.id", sess.UserID)
		repl.Set("http.auth.user.email", sess.Email)
		repl.Set("http.auth.user.role", sess.Role)
		repl.Set("http.auth.user.company", sess.Company)
		repl.Set("http.auth.user.provider", sess.Provider)
	}
	h.removeOwnCookies(r)
	return next.ServeHTTP(w, r)
}

// currentSession returns the request's valid session, nil when there is
// none (or it expired), or an error when the store cannot answer. It renews
// the idle timeout at most once a minute per session.
func (h *Handler) currentSession(r *http.Request) (*session.Session, error) {
	c, err := r.Cookie(h.app.Session.CookieName)
	if err != nil || !session.ValidToken(c.Value) {
		return nil, nil
	}
	id := session.IDFromToken(c.Value)
	now := h.app.now()
	sess, cached := h.app.sessions.get(id, now)
	if !cached {
		var err error
		sess, err = h.app.store.LoadSession(r.Context(), id)
		if errors.Is(err, session.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("loading session: %w", err)
		}
		h.app.sessions.put(sess, now)
	}
	idle := time.Duration(h.app.Session.IdleTimeout)
	if sess.Expired(now, idle) {
		h.app.sessions.drop(sess.ID)
		h.app.tokens.drop(sess.ID)
		if err := h.app.store.DeleteSession(r.Context(), sess.ID); err != nil {
			h.logger.Warn("deleting expired session", zap.Error(err))
		}
		return nil, nil
	}
	if now.Sub(sess.LastSeen) >= renewEvery(idle) {
		sess.LastSeen = now
		h.app.sessions.refresh(sess)
		// RenewSession writes only if the session still exists, so a
		// renewal racing with a logout or revoke-all elsewhere cannot bring
		// it back. A failed renewal only loses the idle-timeout extension:
		// the session itself was verified, so the request goes on.
		renewed, err := h.app.store.RenewSession(r.Context(), sess, sess.TTL(now, idle))
		switch {
		case err != nil:
			h.logger.Warn("renewing session failed", zap.Error(err))
		case !renewed:
			// Ended elsewhere since it was cached: refuse it now.
			h.app.sessions.drop(sess.ID)
			h.app.tokens.drop(sess.ID)
			return nil, nil
		}
	}
	return sess, nil
}

// renewEvery is how often a session's idle timeout is pushed back: often
// enough that a user active at least that often is never timed out, rarely
// enough that the store is not written on every request.
func renewEvery(idle time.Duration) time.Duration {
	return min(time.Minute, idle/10)
}

// identityToken returns the session's cached token, minting a new one when
// there is none or it has less than a fifth of its lifetime left.
func (h *Handler) identityToken(s *session.Session) (string, error) {
	now := h.app.now()
	ttl := time.Duration(h.app.Token.TTL)
	if jwt, ok := h.app.tokens.get(s.ID, now, ttl/5); ok {
		return jwt, nil
	}
	name := identity.Identity{DisplayName: s.DisplayName, GivenName: s.GivenName, FamilyName: s.FamilyName, Email: s.Email}.Name()
	jwt, exp, err := h.app.minter.Mint(token.Claims{
		Subject:    s.UserID,
		Email:      s.Email,
		Name:       name,
		GivenName:  s.GivenName,
		FamilyName: s.FamilyName,
		Role:       s.Role,
		Company:    s.Company,
		Provider:   s.Provider,
		ObjectID:   s.ObjectID,
		TenantID:   s.TenantID,
		SessionID:  s.ID,
	})
	if err != nil {
		return "", fmt.Errorf("minting identity token: %w", err)
	}
	h.app.tokens.put(s.ID, jwt, exp, now)
	return jwt, nil
}

// stripIdentityHeaders removes every client-sent variant of the identity
// headers: the configured header and anything starting with X-Engage-, in
// any case, with '_' or '-'.
func (h *Handler) stripIdentityHeaders(hdr http.Header) {
	for k := range hdr {
		if isIdentityHeader(k, h.header) {
			delete(hdr, k)
		}
	}
}

func isIdentityHeader(k, configured string) bool {
	if len(k) >= len("x-engage-") && normHeaderEqual(k[:len("x-engage-")], "x-engage-") {
		return true
	}
	return len(k) == len(configured) && normHeaderEqual(k, configured)
}

// normHeaderEqual compares header names ignoring case and treating '_' as '-'.
func normHeaderEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := normHeaderByte(a[i]), normHeaderByte(b[i])
		if ca != cb {
			return false
		}
	}
	return true
}

func normHeaderByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	if c == '_' {
		return '-'
	}
	return c
}

// removeOwnCookies keeps engage-sso's cookies from reaching the upstream.
func (h *Handler) removeOwnCookies(r *http.Request) {
	name := h.app.Session.CookieName
	raw := r.Header.Values("Cookie")
	found := false
	for _, v := range raw {
		if strings.Contains(v, name) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	// Other cookies are passed on byte for byte. (Re-serialising
	// r.Cookies() lost the quotes of quoted values and dropped every cookie
	// net/http cannot parse, such as JSON values.)
	var kept strings.Builder
	for _, line := range raw {
		for part := range strings.SplitSeq(line, ";") {
			part = textproto.TrimString(part)
			if part == "" {
				continue
			}
			n, _, _ := strings.Cut(part, "=")
			if n = textproto.TrimString(n); n == name || n == name+bindingCookieSuffix {
				continue
			}
			if kept.Len() == 0 {
				kept.Grow(len(line))
			} else {
				kept.WriteString("; ")
			}
			kept.WriteString(part)
		}
	}
	if kept.Len() == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header.Set("Cookie", kept.String())
}

// unauthenticated sends a browser to sign in, and answers API clients 401.
func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request) error {
	login := "/sso/login?rd=" + url.QueryEscape(r.URL.RequestURI())
	if r.Method != http.MethodGet || wantsJSON(r) {
		w.Header().Set("WWW-Authenticate", `Engage-SSO realm="engage", login="/sso/login"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error":     "unauthenticated",
			"message":   "sign in first",
			"login_url": login,
		})
		return nil
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, login, http.StatusFound)
	return nil
}

// wantsJSON reports whether the client asked for JSON rather than a page.
func wantsJSON(r *http.Request) bool {
	acc := r.Header.Get("Accept")
	if strings.Contains(acc, "application/json") && !strings.Contains(acc, "text/html") {
		return true
	}
	return r.Header.Get("X-Requested-With") == "XMLHttpRequest"
}

// correlationID returns the request's id: Caddy's {http.request.uuid}, so
// that it matches Caddy's own logs when they include it.
func correlationID(r *http.Request) string {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if id, ok := repl.GetString("http.request.uuid"); ok && id != "" {
			return id
		}
	}
	return newRandomID()
}

// fail denies the request with an error page (or JSON) that shows a generic
// message and a correlation id, and logs the detail under that id.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, reason string, err error) error {
	id := correlationID(r)
	lvl := zapcore.WarnLevel
	if status >= 500 {
		lvl = zapcore.ErrorLevel
	}
	if ce := h.logger.Check(lvl, "request denied"); ce != nil {
		ce.Write(zap.String("correlation_id", id), zap.Int("status", status),
			zap.String("reason", reason), zap.String("path", r.URL.Path), zap.Error(err))
	}
	h.renderError(w, r, status, errorPage{Reason: reason, CorrelationID: id})
	return nil
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
)
