package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// SAML Single Logout (SLO), HTTP-Redirect binding, at /sso/saml/{label}/slo.
//
// SP-initiated: /sso/logout ends the local session, then sends the browser
// to the IdP with a LogoutRequest. The request ID waits in the store as a
// pending login under "slo:req:" + RelayState (an opaque random key, never
// a URL), for the login timeout, until the IdP's LogoutResponse comes back.
//
// IdP-initiated: the IdP sends a signed LogoutRequest naming the user by
// NameID (and perhaps SessionIndex). The store has no index by NameID, so
// the ACS leaves two pointers for every session of a provider with SLO,
// stored as pending logins (which expire on their own) for the session
// lifetime, keyed by a hash so that no NameID appears in a key:
//
//	slo:user:<hash(label, NameID)>                user ID     -> App.RevokeUser
//	slo:sess:<hash(label, NameID, SessionIndex)>  session ID  -> DeleteSession
//
// The pointer's target is kept in PendingLogin.RequestID. A request with
// SessionIndexes ends those sessions; one without, or whose SessionIndexes
// are all unknown (fail safe: a logout must not be lost because its
// SessionIndex cannot be matched), ends every session of the user, at
// every provider, since sessions are indexed by user only.
const (
	pendingLogoutPrefix = "slo:req:"
	sloUserPrefix       = "slo:user:"
	sloSessionPrefix    = "slo:sess:"
)

// Notes on the signed-out page. They say what is known without detail;
// the detail is in the log under the page's correlation id.
const (
	noteIdPNotSignedOut = "We could not sign you out of your organisation's Microsoft account, so you may still be signed in to it and to other applications that use it. Close your browser to be sure."
	noteIdPFailed       = "Your organisation's Microsoft account reported that it could not sign you out everywhere. You may still be signed in to other applications that use it: close your browser to be sure."
	notePartial         = "You were signed out of your organisation's Microsoft account, but not of every application that uses it. Close your browser to be sure."
	noteUnconfirmed     = "We could not confirm that your organisation's Microsoft account signed you out. You may still be signed in to it: close your browser to be sure."
)

// signedOutPage is the data of the signed-out page.
type signedOutPage struct {
	// IdPSignedOut says the IdP confirmed the single logout.
	IdPSignedOut bool
	// Note is a warning shown under the message, or "".
	Note string
	// CorrelationID is shown with a Note, to find the detail in the log.
	CorrelationID string
}

// sloKey returns the store key of an SLO pointer for parts (provider
// label, NameID, SessionIndex): prefix and a hash of the parts.
func sloKey(prefix string, parts ...string) string {
	return prefix + hashToken(strings.Join(parts, "\x00"))
}

// endLocalSession ends the browser's session, if it has one, and clears
// the session cookie. It returns the session that ended, or nil. An error
// means the store could not end it.
func (h *Handler) endLocalSession(w http.ResponseWriter, r *http.Request) (*session.Session, error) {
	var ended *session.Session
	if c, err := r.Cookie(h.app.Session.CookieName); err == nil && session.ValidToken(c.Value) {
		id := session.IDFromToken(c.Value)
		s, err := h.app.store.LoadSession(r.Context(), id)
		switch {
		case err == nil:
			ended = s
		case errors.Is(err, session.ErrNotFound):
		default:
			return nil, fmt.Errorf("loading the session to end: %w", err)
		}
		h.app.tokens.drop(id)
		h.app.sessions.drop(id)
		if err := h.app.store.DeleteSession(r.Context(), id); err != nil {
			return nil, fmt.Errorf("ending the session: %w", err)
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.app.Session.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	return ended, nil
}

// startSingleLogout sends the browser to the IdP of s, a session that has
// just ended, with a LogoutRequest. It returns false, having written
// nothing, when the provider has no single logout (or s no NameID). When
// the request cannot be made, the user is signed out locally only: it
// shows the signed-out page with a note and returns true.
func (h *Handler) startSingleLogout(w http.ResponseWriter, r *http.Request, s *session.Session) bool {
	prov := h.app.providers[s.Provider]
	if prov == nil || s.NameID == "" {
		return false
	}
	sp, _ := prov.ready()
	if sp == nil || !sp.SingleLogout() {
		return false
	}
	relay := newRandomToken()
	redirect, requestID, err := sp.LogoutRequestURL(samlsp.LogoutSubject{
		NameID: s.NameID, NameIDFormat: s.NameIDFormat, SessionIndex: s.SessionIndex,
	}, relay)
	if err == nil {
		err = h.app.store.SavePending(r.Context(), pendingLogoutPrefix+relay, &session.PendingLogin{
			RequestID: requestID, Provider: s.Provider, CreatedAt: h.app.now(),
		}, time.Duration(h.app.Session.LoginTimeout))
	}
	id := correlationID(r)
	if err != nil {
		h.logger.Warn("single logout not started: signed out of engage-sso only",
			zap.String("correlation_id", id), zap.String("provider", s.Provider),
			zap.String("user_id", s.UserID), zap.Error(err))
		h.renderSignedOutPage(w, signedOutPage{Note: noteIdPNotSignedOut, CorrelationID: id})
		return true
	}
	h.logger.Info("single logout started",
		zap.String("correlation_id", id), zap.String("provider", s.Provider),
		zap.String("user_id", s.UserID), zap.String("logout_request_id", requestID))
	http.Redirect(w, r, redirect, http.StatusFound)
	return true
}

// rememberForLogout leaves the SLO pointers of s, a new session at a
// provider whose SP is sp, so that a LogoutRequest from the IdP finds it
// (see the comment at the top of this file). It does nothing when the
// provider has no single logout.
func (h *Handler) rememberForLogout(ctx context.Context, sp *samlsp.SP, s *session.Session) error {
	if !sp.SingleLogout() || s.NameID == "" {
		return nil
	}
	if s.UserID != "" {
		if err := h.saveSLOPointer(ctx, sloKey(sloUserPrefix, s.Provider, s.NameID), s.Provider, s.UserID); err != nil {
			return err
		}
	}
	if s.SessionIndex != "" {
		if err := h.saveSLOPointer(ctx, sloKey(sloSessionPrefix, s.Provider, s.NameID, s.SessionIndex), s.Provider, s.ID); err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) saveSLOPointer(ctx context.Context, key, label, target string) error {
	p := &session.PendingLogin{RequestID: target, Provider: label, CreatedAt: h.app.now()}
	if err := h.app.store.SavePending(ctx, key, p, time.Duration(h.app.Session.Lifetime)); err != nil {
		return fmt.Errorf("saving the single logout index: %w", err)
	}
	return nil
}

// takeSLOPointer returns and removes the target of an SLO pointer, or
// session.ErrNotFound.
func (h *Handler) takeSLOPointer(ctx context.Context, key string) (string, error) {
	p, err := h.app.store.TakePending(ctx, key)
	if err != nil {
		return "", err
	}
	return p.RequestID, nil
}

// slo serves the single logout service of provider label: LogoutRequests
// (GET with the HTTP-Redirect binding, POST with HTTP-POST) and
// LogoutResponses (GET).
func (h *Handler) slo(w http.ResponseWriter, r *http.Request, label string) error {
	prov, sp, err := h.readyProvider(w, r, label)
	if prov == nil || sp == nil {
		return err
	}
	if !sp.SingleLogout() {
		return h.fail(w, r, http.StatusNotFound, "not_found",
			fmt.Errorf("provider %q: single logout is off: the IdP metadata has no HTTP-Redirect SingleLogoutService", label))
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxSLOBody)
		if err := r.ParseForm(); err != nil {
			return h.sloRefused(w, r, prov, http.StatusBadRequest, string(samlsp.ReasonMalformed), err)
		}
		if v := r.PostForm.Get("SAMLRequest"); v != "" {
			req, err := sp.ParsePostLogoutRequest(r.Context(), v)
			return h.idpLogout(w, r, prov, sp, req, r.PostForm.Get("RelayState"), err)
		}
		return h.sloRefused(w, r, prov, http.StatusBadRequest, string(samlsp.ReasonMalformed), errors.New("no SAMLRequest in the POST"))
	}
	q := r.URL.Query()
	switch {
	case q.Has("SAMLRequest"):
		req, err := sp.ParseRedirectLogoutRequest(r.Context(), r.URL.RawQuery)
		return h.idpLogout(w, r, prov, sp, req, q.Get("RelayState"), err)
	case q.Has("SAMLResponse"):
		return h.logoutResponse(w, r, prov, sp)
	}
	return h.sloRefused(w, r, prov, http.StatusBadRequest, string(samlsp.ReasonMalformed), errors.New("no SAMLRequest or SAMLResponse in the query"))
}

// logoutResponse ends an SP-initiated single logout: it checks the IdP's
// LogoutResponse and shows the signed-out page, with a note unless the IdP
// confirmed the logout. The user is signed out here whatever the response
// says.
func (h *Handler) logoutResponse(w http.ResponseWriter, r *http.Request, prov *provider, sp *samlsp.SP) error {
	// The session ended before the browser went to the IdP. One the
	// browser has now is ended too, so that the page tells the truth.
	if _, err := h.endLocalSession(w, r); err != nil {
		return h.fail(w, r, http.StatusServiceUnavailable, "store_unavailable", err)
	}
	id := correlationID(r)
	label := prov.cfg.Label
	requestID := ""
	if relay := r.URL.Query().Get("RelayState"); session.ValidToken(relay) {
		p, err := h.app.store.TakePending(r.Context(), pendingLogoutPrefix+relay)
		switch {
		case err == nil && p.Provider == label:
			requestID = p.RequestID
		case err == nil, errors.Is(err, session.ErrNotFound):
			// Another provider's logout, expired or already answered: the
			// response is refused as answering no pending request.
		default:
			h.logger.Warn("single logout response not checked: store unavailable",
				zap.String("correlation_id", id), zap.String("provider", label), zap.Error(err))
			h.renderSignedOutPage(w, signedOutPage{Note: noteUnconfirmed, CorrelationID: id})
			return nil
		}
	}
	resp, err := sp.ParseLogoutResponse(r.URL.RawQuery, requestID)
	switch reason := samlsp.ReasonOf(err); {
	case err == nil && resp.Partial:
		h.logger.Info("single logout partly completed by the identity provider",
			zap.String("correlation_id", id), zap.String("provider", label))
		h.renderSignedOutPage(w, signedOutPage{Note: notePartial, CorrelationID: id})
	case err == nil:
		h.logger.Info("single logout completed",
			zap.String("correlation_id", id), zap.String("provider", label))
		h.renderSignedOutPage(w, signedOutPage{IdPSignedOut: true})
	case reason == samlsp.ReasonIdPStatus:
		h.logger.Warn("identity provider did not complete single logout",
			zap.String("correlation_id", id), zap.String("provider", label), zap.Error(err))
		h.renderSignedOutPage(w, signedOutPage{Note: noteIdPFailed, CorrelationID: id})
	default:
		h.logger.Warn("single logout response refused",
			zap.String("correlation_id", id), zap.String("provider", label),
			zap.String("reason", string(reason)), zap.Error(err))
		h.renderSignedOutPage(w, signedOutPage{Note: noteUnconfirmed, CorrelationID: id})
	}
	return nil
}

// idpLogout answers a LogoutRequest from the IdP, which parsing gave as
// req and err: a request that does not verify is refused with an error
// page, changing nothing; a verified one ends the sessions it names and is
// answered with a LogoutResponse, Responder if that failed.
func (h *Handler) idpLogout(w http.ResponseWriter, r *http.Request, prov *provider, sp *samlsp.SP, req *samlsp.LogoutRequest, relay string, err error) error {
	if err != nil {
		reason := samlsp.ReasonOf(err)
		switch {
		case reason == samlsp.ReasonInternal && req != nil:
			// Verified, but the replay check could not be made.
			return h.answerLogout(w, r, prov, sp, req, relay, 0, err)
		case reason == samlsp.ReasonInternal:
			return h.sloRefused(w, r, prov, http.StatusServiceUnavailable, string(reason), err)
		case reason == samlsp.ReasonMalformed:
			return h.sloRefused(w, r, prov, http.StatusBadRequest, string(reason), err)
		default:
			return h.sloRefused(w, r, prov, http.StatusForbidden, string(reason), err)
		}
	}
	n, err := h.endSubjectSessions(r.Context(), prov.cfg.Label, req)
	return h.answerLogout(w, r, prov, sp, req, relay, n, err)
}

// endSubjectSessions ends the sessions at provider label of the principal
// req names, and returns how many it found (see the comment at the top of
// this file).
func (h *Handler) endSubjectSessions(ctx context.Context, label string, req *samlsp.LogoutRequest) (int, error) {
	found := 0
	for _, si := range req.SessionIndexes {
		key := sloKey(sloSessionPrefix, label, req.NameID, si)
		sid, err := h.takeSLOPointer(ctx, key)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return found, fmt.Errorf("reading the single logout index: %w", err)
		}
		h.app.tokens.drop(sid)
		h.app.sessions.drop(sid)
		if err := h.app.store.DeleteSession(ctx, sid); err != nil {
			return found, h.restoreSLOPointer(ctx, key, label, sid, fmt.Errorf("ending session: %w", err))
		}
		found++
	}
	if found > 0 {
		return found, nil
	}
	key := sloKey(sloUserPrefix, label, req.NameID)
	userID, err := h.takeSLOPointer(ctx, key)
	if errors.Is(err, session.ErrNotFound) {
		// No session of this user began here since the last logout.
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the single logout index: %w", err)
	}
	n, err := h.app.RevokeUser(ctx, userID)
	if err != nil {
		return n, h.restoreSLOPointer(ctx, key, label, userID, err)
	}
	return n, nil
}

// restoreSLOPointer puts back a pointer taken for a logout that failed
// with cause, so that the IdP's retry finds it, and returns cause (joined
// with any error putting it back).
func (h *Handler) restoreSLOPointer(ctx context.Context, key, label, target string, cause error) error {
	if err := h.saveSLOPointer(ctx, key, label, target); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// answerLogout redirects the browser to the IdP with the LogoutResponse to
// req: Success, or Responder when failure is not nil.
func (h *Handler) answerLogout(w http.ResponseWriter, r *http.Request, prov *provider, sp *samlsp.SP, req *samlsp.LogoutRequest, relay string, ended int, failure error) error {
	id := correlationID(r)
	status := samlsp.StatusSuccess
	if failure != nil {
		status = samlsp.StatusResponder
		h.logger.Error("single logout from the identity provider failed",
			zap.String("correlation_id", id), zap.String("provider", prov.cfg.Label),
			zap.String("logout_request_id", req.ID), zap.Error(failure))
	} else {
		h.logger.Info("signed out by the identity provider",
			zap.String("correlation_id", id), zap.String("provider", prov.cfg.Label),
			zap.String("logout_request_id", req.ID), zap.Int("sessions_ended", ended))
	}
	redirect, err := sp.LogoutResponseURL(req.ID, relay, status)
	if err != nil {
		return h.sloRefused(w, r, prov, http.StatusInternalServerError, "logout_response", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect, http.StatusFound)
	return nil
}

// sloRefused refuses a single logout message: it logs the detail under a
// correlation id and shows an error page that says nothing was changed.
func (h *Handler) sloRefused(w http.ResponseWriter, r *http.Request, prov *provider, status int, reason string, err error) error {
	id := correlationID(r)
	lvl := zapcore.WarnLevel
	if status >= 500 {
		lvl = zapcore.ErrorLevel
	}
	if ce := h.logger.Check(lvl, "single logout refused"); ce != nil {
		ce.Write(zap.String("correlation_id", id), zap.String("provider", prov.cfg.Label),
			zap.Int("status", status), zap.String("reason", reason), zap.Error(err))
	}
	p := errorPage{Reason: reason, CorrelationID: id, Provider: prov.cfg.Label, Company: prov.company.Name, Status: status}
	switch {
	case status >= 500:
		p.Title = "Sign-out temporarily unavailable"
		p.Message = "The sign-out request from your identity provider could not be processed because of a problem on our side."
		p.Hint = "Try again in a minute. If it keeps failing, give your administrator the reference below."
	case status == http.StatusBadRequest:
		p.Title = "Invalid sign-out request"
		p.Message = "The sign-out request could not be read, so nothing was changed."
		p.Hint = "To sign out of Engage, use its Sign out link."
	default:
		p.Title = "Sign-out request refused"
		p.Message = "The sign-out request could not be verified as coming from your organisation's identity provider, so nothing was changed."
		p.Hint = "To sign out of Engage, use its Sign out link. If this keeps happening, give your administrator the reference below."
	}
	h.render(w, status, "error.html", p)
	return nil
}

// renderSignedOutPage shows the signed-out page with p.
func (h *Handler) renderSignedOutPage(w http.ResponseWriter, p signedOutPage) {
	h.render(w, http.StatusOK, "signedout.html", p)
}
