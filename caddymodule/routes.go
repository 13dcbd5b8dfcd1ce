package caddymodule

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/engage-sso/engage-sso/caddymodule/identity"
	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// maxSLOBody bounds a logout message POSTed to the SLO endpoint. (The ACS
// limit is the provider's max_response_size.)
const maxSLOBody = 256 << 10

// bindingCookieSuffix names the pre-auth cookie that binds a pending login
// to the browser that started it (see startLogin).
const bindingCookieSuffix = "_login"

// serveSSO dispatches the /sso/ endpoints.
func (h *Handler) serveSSO(w http.ResponseWriter, r *http.Request) error {
	p := r.URL.Path
	switch {
	case p == "/sso/login":
		return h.serveLogin(w, r)
	case strings.HasPrefix(p, "/sso/login/"):
		return h.methods(w, r, h.startLogin, http.MethodGet)
	case strings.HasPrefix(p, "/sso/saml/"):
		rest := strings.TrimPrefix(p, "/sso/saml/")
		label, action, _ := strings.Cut(rest, "/")
		switch action {
		case "acs":
			return h.methods(w, r, func(w http.ResponseWriter, r *http.Request) error { return h.acs(w, r, label) }, http.MethodPost)
		case "metadata":
			return h.methods(w, r, func(w http.ResponseWriter, r *http.Request) error { return h.spMetadata(w, r, label) }, http.MethodGet)
		case "slo":
			return h.methods(w, r, func(w http.ResponseWriter, r *http.Request) error { return h.slo(w, r, label) }, http.MethodGet, http.MethodPost)
		case "certificate":
			return h.methods(w, r, func(w http.ResponseWriter, r *http.Request) error { return h.spCertificate(w, r, label) }, http.MethodGet)
		}
	case p == "/sso/logout":
		return h.methods(w, r, h.logout, http.MethodGet, http.MethodPost)
	case p == jwksPath:
		return h.methods(w, r, h.jwks, http.MethodGet)
	case p == "/sso/healthz":
		return h.methods(w, r, h.healthz, http.MethodGet)
	}
	h.renderError(w, r, http.StatusNotFound, errorPage{Reason: "not_found", CorrelationID: correlationID(r)})
	return nil
}

func (h *Handler) methods(w http.ResponseWriter, r *http.Request, fn func(http.ResponseWriter, *http.Request) error, allowed ...string) error {
	for _, m := range allowed {
		if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
			return fn(w, r)
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	h.renderError(w, r, http.StatusMethodNotAllowed, errorPage{Reason: "method_not_allowed", CorrelationID: correlationID(r)})
	return nil
}

// serveLogin shows the email form (GET) and finds the provider for the
// email's domain (POST): home-realm discovery.
func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rd := safeReturnPath(r.URL.Query().Get("rd"))
		if sess, err := h.currentSession(r); err == nil && sess != nil {
			http.Redirect(w, r, orDefault(rd, "/"), http.StatusFound)
			return nil
		}
		h.renderLogin(w, http.StatusOK, loginPage{ReturnTo: rd, Email: r.URL.Query().Get("email")})
		return nil
	case http.MethodPost:
	default:
		// Names the allowed methods for the Allow header (a 405 must send
		// one); fn is never called, since r.Method is none of them.
		return h.methods(w, r, nil, http.MethodGet, http.MethodPost)
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return h.fail(w, r, http.StatusBadRequest, "bad_form", err)
	}
	rd := safeReturnPath(r.PostForm.Get("rd"))
	raw := strings.TrimSpace(r.PostForm.Get("email"))
	email, ok := identity.NormaliseEmail(raw)
	if !ok {
		h.renderLogin(w, http.StatusUnprocessableEntity, loginPage{ReturnTo: rd, Email: raw,
			Error: "Enter your work email address, such as name@company.com."})
		return nil
	}
	c := h.app.companyForEmail(email)
	if c == nil {
		h.renderLogin(w, http.StatusNotFound, loginPage{ReturnTo: rd, Email: raw,
			Error: fmt.Sprintf("Single sign-on is not set up for %s. Check the address, or ask your administrator.", identity.EmailDomain(email))})
		return nil
	}
	if len(c.Providers) == 1 {
		http.Redirect(w, r, shortcutURL(c.Providers[0].Label, rd, email), http.StatusSeeOther)
		return nil
	}
	page := loginPage{ReturnTo: rd, Email: raw, Company: c.Name}
	for _, p := range c.Providers {
		page.Choices = append(page.Choices, loginChoice{Label: p.Label, URL: shortcutURL(p.Label, rd, email)})
	}
	h.renderLogin(w, http.StatusOK, page)
	return nil
}

func shortcutURL(label, rd, email string) string {
	q := url.Values{}
	if rd != "" {
		q.Set("rd", rd)
	}
	if email != "" {
		q.Set("login_hint", email)
	}
	u := "/sso/login/" + label
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// startLogin sends the browser to the IdP with an AuthnRequest. The pending
// login (request ID, return path) is kept server-side under a random
// RelayState, so the ACS does not depend on a cookie: Azure's POST to the
// ACS is a cross-site request, on which browsers drop SameSite=Lax cookies.
//
// To stop login CSRF (an attacker's own SAMLResponse posted from the
// victim's browser) the pending login is also bound to this browser by a
// pre-auth cookie. That cookie must reach the cross-site POST, so it is
// SameSite=None, which browsers accept only with Secure: the binding is
// therefore used whenever the site is served over HTTPS, and skipped on
// plain-HTTP development setups (the demo on localhost).
func (h *Handler) startLogin(w http.ResponseWriter, r *http.Request) error {
	label := strings.TrimPrefix(r.URL.Path, "/sso/login/")
	prov, sp, err := h.readyProvider(w, r, label)
	if prov == nil || sp == nil {
		return err
	}
	relay := newRandomToken()
	redirect, requestID, err := sp.AuthnRequestURL(relay)
	if err != nil {
		return h.fail(w, r, http.StatusInternalServerError, "authn_request", err)
	}
	pending := &session.PendingLogin{
		RequestID: requestID,
		Provider:  label,
		ReturnTo:  safeReturnPath(r.URL.Query().Get("rd")),
		CreatedAt: h.app.now(),
	}
	if h.secure(r) {
		pending.Binding = h.bindBrowser(w, r)
	}
	if err := h.app.store.SavePending(r.Context(), relay, pending, time.Duration(h.app.Session.LoginTimeout)); err != nil {
		return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
	}
	if hint := r.URL.Query().Get("login_hint"); hint != "" {
		if e, ok := identity.NormaliseEmail(hint); ok {
			redirect = addQuery(redirect, "login_hint", e)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect, http.StatusFound)
	return nil
}

// readyProvider returns the provider and its SP, or answers the request
// itself (unknown label: 404; metadata not loaded: 503) and returns nils.
func (h *Handler) readyProvider(w http.ResponseWriter, r *http.Request, label string) (*provider, *samlsp.SP, error) {
	prov := h.app.providers[label]
	if prov == nil {
		return nil, nil, h.fail(w, r, http.StatusNotFound, "unknown_provider", fmt.Errorf("no provider %q", label))
	}
	sp, why := prov.ready()
	if sp == nil {
		return nil, nil, h.fail(w, r, http.StatusServiceUnavailable, "provider_unavailable", fmt.Errorf("provider %q: %s", label, why))
	}
	return prov, sp, nil
}

// bindBrowser returns the hash of this browser's pre-auth cookie, setting
// one if it has none. Tabs share one value, so parallel logins all work.
func (h *Handler) bindBrowser(w http.ResponseWriter, r *http.Request) string {
	name := h.app.Session.CookieName + bindingCookieSuffix
	val := ""
	if c, err := r.Cookie(name); err == nil && session.ValidToken(c.Value) {
		val = c.Value
	} else {
		val = newRandomToken()
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: val, Path: "/sso/saml/",
		MaxAge:   int(time.Duration(h.app.Session.LoginTimeout).Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode,
	})
	return hashToken(val)
}

// acs is the Assertion Consumer Service: it verifies Azure's Response,
// resolves the identity and starts a session.
func (h *Handler) acs(w http.ResponseWriter, r *http.Request, label string) error {
	prov, sp, err := h.readyProvider(w, r, label)
	if prov == nil || sp == nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, int64(prov.cfg.maxResponseSize()))
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return h.loginFailed(w, r, prov, http.StatusRequestEntityTooLarge, string(samlsp.ReasonMalformed), err)
		}
		return h.loginFailed(w, r, prov, http.StatusBadRequest, string(samlsp.ReasonMalformed), err)
	}
	samlResponse := r.PostForm.Get("SAMLResponse")
	if samlResponse == "" {
		return h.loginFailed(w, r, prov, http.StatusBadRequest, string(samlsp.ReasonMalformed), errors.New("no SAMLResponse in the POST"))
	}
	relay := r.PostForm.Get("RelayState")

	var pending *session.PendingLogin
	if session.ValidToken(relay) {
		p, err := h.app.store.TakePending(r.Context(), relay)
		switch {
		case err == nil:
			pending = p
		case errors.Is(err, session.ErrNotFound):
			// Expired, already used, or never ours: the response is then
			// checked as unsolicited and refused if it answers a request.
		default:
			return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
		}
	}
	var requestIDs []string
	returnTo := ""
	if pending != nil {
		if pending.Provider != label {
			return h.loginFailed(w, r, prov, http.StatusBadRequest, string(samlsp.ReasonDestination),
				fmt.Errorf("login started for provider %q but the response was posted to %q", pending.Provider, label))
		}
		if pending.Binding != "" {
			c, err := r.Cookie(h.app.Session.CookieName + bindingCookieSuffix)
			if err != nil || subtle.ConstantTimeCompare([]byte(hashToken(c.Value)), []byte(pending.Binding)) != 1 {
				return h.loginFailed(w, r, prov, http.StatusBadRequest, "browser_mismatch",
					errors.New("the pre-auth cookie of the browser that started the login is missing or different"))
			}
		}
		requestIDs = []string{pending.RequestID}
		returnTo = pending.ReturnTo
	} else if relay != "" && !session.ValidToken(relay) {
		// IdP-initiated: Azure passes the app's configured Relay State.
		returnTo = safeReturnPath(relay)
	}

	a, err := sp.ParseResponse(r.Context(), samlResponse, requestIDs)
	if err != nil {
		var se *samlsp.Error
		if errors.As(err, &se) {
			status := http.StatusForbidden
			switch se.Reason {
			case samlsp.ReasonInternal:
				return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
			case samlsp.ReasonMalformed:
				status = http.StatusBadRequest
			}
			return h.loginFailed(w, r, prov, status, string(se.Reason), err)
		}
		return h.loginFailed(w, r, prov, http.StatusBadRequest, string(samlsp.ReasonMalformed), err)
	}

	claims, err := h.resolveOverage(r, prov, identity.Claims{NameID: a.NameID, Attributes: a.Attributes})
	if err != nil {
		var oe *overageError
		if errors.As(err, &oe) && oe.reason == "store_unavailable" {
			return h.fail(w, r, oe.status, oe.reason, err)
		}
		if errors.As(err, &oe) {
			return h.loginFailed(w, r, prov, oe.status, oe.reason, err)
		}
		return h.loginFailed(w, r, prov, http.StatusInternalServerError, "graph_error", err)
	}
	id, err := identity.Resolve(claims, prov.policy)
	if err != nil {
		reason := "denied"
		if d, ok := identity.IsDenied(err); ok {
			reason = string(d.Reason)
		}
		return h.loginFailed(w, r, prov, http.StatusForbidden, reason, err)
	}
	if reason, status, err := h.resolveUser(r.Context(), prov, &id); err != nil {
		return h.loginFailed(w, r, prov, status, reason, err)
	}

	now := h.app.now()
	tok, sid, err := session.NewToken(nil)
	if err != nil {
		return h.fail(w, r, http.StatusInternalServerError, "session_error", err)
	}
	sess := &session.Session{
		ID: sid, UserID: id.UserID, Email: id.Email,
		GivenName: id.GivenName, FamilyName: id.FamilyName, DisplayName: id.DisplayName,
		Role: id.Role.String(), Company: id.Company, Provider: id.Provider,
		ObjectID: id.ObjectID, TenantID: id.TenantID,
		NameID: a.NameID, NameIDFormat: a.NameIDFormat, SessionIndex: a.SessionIndex,
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Duration(h.app.Session.Lifetime)),
	}
	if err := h.rememberForLogout(r.Context(), sp, sess); err != nil {
		return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
	}
	idle := time.Duration(h.app.Session.IdleTimeout)
	if err := h.app.store.SaveSession(r.Context(), sess, sess.TTL(now, idle)); err != nil {
		return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
	}
	// A new session id at every login: an earlier cookie (planted or not)
	// never becomes an authenticated one.
	if old, err := r.Cookie(h.app.Session.CookieName); err == nil && session.ValidToken(old.Value) {
		oldID := session.IDFromToken(old.Value)
		h.app.tokens.drop(oldID)
		h.app.sessions.drop(oldID)
		if err := h.app.store.DeleteSession(r.Context(), oldID); err != nil {
			h.logger.Warn("deleting the previous session", zap.Error(err))
		}
	}
	h.setSessionCookie(w, r, tok)
	h.app.metrics.logins.WithLabelValues(label).Inc()
	h.logger.Info("signed in",
		zap.String("correlation_id", correlationID(r)), zap.String("provider", label),
		zap.String("company", id.Company), zap.String("user_id", id.UserID),
		zap.String("email", id.Email), zap.String("role", id.Role.String()),
		zap.Bool("idp_initiated", pending == nil))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, orDefault(returnTo, orDefault(prov.cfg.DefaultPath, "/")), http.StatusSeeOther)
	return nil
}

// loginFailed refuses a login: it counts it, logs it and shows the page for
// the reason.
func (h *Handler) loginFailed(w http.ResponseWriter, r *http.Request, prov *provider, status int, reason string, err error) error {
	h.app.metrics.denied.WithLabelValues(prov.cfg.Label, reason).Inc()
	id := correlationID(r)
	h.logger.Warn("sign-in refused",
		zap.String("correlation_id", id), zap.String("provider", prov.cfg.Label),
		zap.String("company", prov.company.ID), zap.String("reason", reason), zap.Error(err))
	h.renderError(w, r, status, errorPage{Reason: reason, CorrelationID: id, Provider: prov.cfg.Label, Company: prov.company.Name})
	return nil
}

func (h *Handler) setSessionCookie(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{
		Name: h.app.Session.CookieName, Value: value, Path: "/",
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode,
	})
}

// secure reports whether cookies must be Secure: always when the site's
// base URL or the request is HTTPS.
func (h *Handler) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(h.app.BaseURL, "https://")
}

// spMetadata serves the SP metadata that Azure can import.
func (h *Handler) spMetadata(w http.ResponseWriter, r *http.Request, label string) error {
	prov, sp, err := h.readyProvider(w, r, label)
	if prov == nil || sp == nil {
		return err
	}
	xml, err := sp.Metadata()
	if err != nil {
		return h.fail(w, r, http.StatusInternalServerError, "metadata_error", err)
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Content-Disposition", `inline; filename="`+label+`-sp-metadata.xml"`)
	_, err = w.Write(xml)
	return err
}

// spCertificate serves the provider's SP certificate as a PEM ".cer" file,
// for upload to Azure (Token encryption, or Verification certificates for
// signed requests). 404 when the provider has none (encryption off and
// requests unsigned).
func (h *Handler) spCertificate(w http.ResponseWriter, r *http.Request, label string) error {
	prov := h.app.providers[label]
	if prov == nil {
		return h.fail(w, r, http.StatusNotFound, "unknown_provider", fmt.Errorf("no provider %q", label))
	}
	if prov.creds == nil {
		return h.fail(w, r, http.StatusNotFound, "no_certificate",
			fmt.Errorf("provider %q has no SP certificate: encryption is off and requests are not signed", label))
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="`+label+`-engage-sso.cer"`)
	_, err := w.Write(samlsp.CertificatePEM(prov.creds.Certificate))
	return err
}

// logout ends the session, then sends the browser to the IdP with a
// LogoutRequest when the session's provider has single logout (see
// slo.go), or shows the signed-out page.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	sess, err := h.endLocalSession(w, r)
	if err != nil {
		return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
	}
	if sess != nil && h.startSingleLogout(w, r, sess) {
		return nil
	}
	h.renderSignedOut(w)
	return nil
}

func (h *Handler) jwks(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(h.app.keys.JWKS())
	return err
}

// healthz reports the store and each provider's metadata.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) error {
	status := http.StatusOK
	body := map[string]any{"status": "ok", "store": "up"}
	if err := h.app.store.Ping(r.Context()); err != nil {
		status = http.StatusServiceUnavailable
		body["status"], body["store"] = "unavailable", "down"
		h.logger.Error("health check: store down", zap.Error(err))
	}
	provs := map[string]string{}
	for label, p := range h.app.providers {
		if sp, _ := p.ready(); sp != nil {
			provs[label] = "ready"
		} else {
			provs[label] = "metadata unavailable"
		}
	}
	body["providers"] = provs
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, body)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// addQuery appends a parameter without re-encoding the rest of the URL, so
// a signed redirect-binding query stays byte-for-byte intact.
func addQuery(rawURL, k, v string) string {
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + url.QueryEscape(k) + "=" + url.QueryEscape(v)
}

// newRandomToken returns 256 random bits in the session token format.
func newRandomToken() string {
	tok, _, err := session.NewToken(nil)
	if err != nil {
		// Since Go 1.24 crypto/rand.Read never returns an error (it
		// aborts the process itself), so this cannot happen.
		panic("engage_sso: crypto/rand failed: " + err.Error())
	}
	return tok
}

func newRandomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hashToken(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
