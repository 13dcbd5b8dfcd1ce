package engageauth

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// Error codes of the JSON bodies the middleware answers with.
const (
	// CodeMissingIdentity: the request carried no identity token (401).
	CodeMissingIdentity = "missing_identity"
	// CodeInvalidIdentity: the identity token did not verify (401).
	CodeInvalidIdentity = "invalid_identity"
	// CodeIdentityUnavailable: the signing keys could not be fetched, so the
	// token could not be checked (503).
	CodeIdentityUnavailable = "identity_unavailable"
)

// Middleware returns a handler that verifies the identity token of every
// request and calls next with the identity in the request context (see
// FromContext). It never calls next without a verified identity.
//
// A request without the header is answered 401 {"error":"missing_identity"};
// one whose token does not verify, or that carries the header more than
// once, 401 {"error":"invalid_identity"}; if the signing keys cannot be
// fetched, 503 {"error":"identity_unavailable"}. The responses say nothing
// more; the reason goes to Options.Logger.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values(v.opts.Header)
		switch {
		case len(values) == 0 || (len(values) == 1 && strings.TrimSpace(values[0]) == ""):
			v.reject(w, r, http.StatusUnauthorized, CodeMissingIdentity, nil)
			return
		case len(values) > 1:
			v.reject(w, r, http.StatusUnauthorized, CodeInvalidIdentity, errors.New("engageauth: identity header repeated"))
			return
		}
		id, err := v.Verify(r.Context(), strings.TrimSpace(values[0]))
		if err != nil {
			if errors.Is(err, ErrKeysUnavailable) {
				v.reject(w, r, http.StatusServiceUnavailable, CodeIdentityUnavailable, err)
			} else {
				v.reject(w, r, http.StatusUnauthorized, CodeInvalidIdentity, err)
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}

// reject logs err, if there is a logger, and writes a JSON error body.
func (v *Verifier) reject(w http.ResponseWriter, r *http.Request, status int, code string, err error) {
	if l := v.opts.Logger; l != nil {
		attrs := []slog.Attr{
			slog.String("code", code),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("remote_addr", r.RemoteAddr),
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		l.LogAttrs(r.Context(), slog.LevelInfo, "engageauth: request rejected", attrs...)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The codes are constants without characters that need JSON escaping.
	_, _ = w.Write([]byte(`{"error":"` + code + `"}` + "\n"))
}
