package demoapp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// Error codes of the user hook (docs/upstream-api.md).
const (
	codeNotFound            = "not_found"
	codeDuplicateEmail      = "duplicate_email"
	codeDuplicateExternalID = "duplicate_external_id"
	codeInvalid             = "invalid"
	codeIdempotencyMismatch = "idempotency_key_reused"
	codeUnauthorized        = "unauthorized"
	codeMethodNotAllowed    = "method_not_allowed"
	codeInternal            = "internal"
	codeUnavailable         = "unavailable"
)

// Limits of the hook.
const (
	// DefaultHookAudience is the audience of user hook tokens.
	DefaultHookAudience = "user-hook"
	// maxHookTokenLifetime is the longest exp − iat accepted: hook tokens
	// are meant to live for a minute.
	maxHookTokenLifetime = 5 * time.Minute
	maxHookBody          = 64 << 10
	defaultListLimit     = 100
	maxListLimit         = 500
	maxFieldLen          = 256
	maxKeyLen            = 255
)

// hookError is a failure answered with the contract's error body.
type hookError struct {
	status  int
	code    string
	message string
}

func (e *hookError) Error() string { return e.code + ": " + e.message }

// errNoChange tells store.update that the change left the state as it was.
var errNoChange = errors.New("no change")

// hook serves the user hook under /hook/.
type hook struct {
	verifier *engageauth.Verifier // audience "user-hook"
	store    *store
	logger   *slog.Logger
}

// ServeHTTP authenticates the request and routes it:
//
//	GET    /hook/users?company=&email=|external_id=   lookup
//	GET    /hook/users?company=&cursor=&limit=        list
//	POST   /hook/users                                create (Idempotency-Key)
//	GET    /hook/users/{id}                           read
//	PATCH  /hook/users/{id}                           update
//	DELETE /hook/users/{id}                           delete
//	POST   /hook/users/{id}/deactivate                deactivate
func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	sub, err := h.authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="user-hook"`)
		h.fail(rec, r, err)
	} else {
		h.route(rec, r, sub)
	}
	h.logger.LogAttrs(r.Context(), slog.LevelInfo, "demoapp: hook request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.status), slog.String("caller", sub))
}

// authenticate verifies the bearer token and returns its subject.
func (h *hook) authenticate(r *http.Request) (string, error) {
	unauthorized := func(msg string) error { return &hookError{http.StatusUnauthorized, codeUnauthorized, msg} }
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", unauthorized("one Authorization: Bearer header is required")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", unauthorized("one Authorization: Bearer header is required")
	}
	id, err := h.verifier.Verify(r.Context(), tok)
	if errors.Is(err, engageauth.ErrKeysUnavailable) {
		h.logger.WarnContext(r.Context(), "demoapp: hook keys unavailable", slog.String("error", err.Error()))
		return "", &hookError{http.StatusServiceUnavailable, codeUnavailable, "signing keys unavailable"}
	}
	if err != nil {
		h.logger.InfoContext(r.Context(), "demoapp: hook token refused", slog.String("error", err.Error()))
		return "", unauthorized("invalid bearer token")
	}
	if id.IssuedAt.IsZero() || id.ExpiresAt.Sub(id.IssuedAt) > maxHookTokenLifetime {
		return "", unauthorized("bearer token lives too long")
	}
	return id.UserID, nil
}

// route dispatches an authenticated request.
func (h *hook) route(w http.ResponseWriter, r *http.Request, sub string) {
	var segs []string
	for s := range strings.SplitSeq(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), "/hook"), "/"), "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			h.fail(w, r, &hookError{http.StatusNotFound, codeNotFound, "no such resource"})
			return
		}
		segs = append(segs, u)
	}
	allow := func(methods ...string) bool {
		for _, m := range methods {
			if r.Method == m {
				return true
			}
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		h.fail(w, r, &hookError{http.StatusMethodNotAllowed, codeMethodNotAllowed, "method not allowed"})
		return false
	}
	switch {
	case len(segs) == 1 && segs[0] == "users":
		if !allow(http.MethodGet, http.MethodPost) {
			return
		}
		if r.Method == http.MethodGet {
			h.query(w, r)
		} else {
			h.create(w, r, sub)
		}
	case len(segs) == 2 && segs[0] == "users" && segs[1] != "":
		if !allow(http.MethodGet, http.MethodPatch, http.MethodDelete) {
			return
		}
		switch r.Method {
		case http.MethodGet:
			h.get(w, r, segs[1])
		case http.MethodPatch:
			h.patch(w, r, segs[1])
		default:
			h.delete(w, r, segs[1])
		}
	case len(segs) == 3 && segs[0] == "users" && segs[1] != "" && segs[2] == "deactivate":
		if allow(http.MethodPost) {
			h.deactivate(w, r, segs[1])
		}
	default:
		h.fail(w, r, &hookError{http.StatusNotFound, codeNotFound, "no such resource"})
	}
}

// query serves lookups and listing.
func (h *hook) query(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	company, email, extID := q.Get("company"), q.Get("email"), q.Get("external_id")
	switch {
	case company == "":
		h.fail(w, r, badRequest("the company parameter is required"))
		return
	case email != "" && extID != "":
		h.fail(w, r, badRequest("give email or external_id, not both"))
		return
	case email != "" || extID != "":
		var found []user
		h.store.read(func(st *state) {
			if rec, ok := st.findBy(company, func(rec *record) bool {
				if email != "" {
					return strings.EqualFold(rec.Email, email)
				}
				return rec.ExternalID == extID
			}); ok {
				found = append(found, rec.user)
			}
		})
		writeJSON(w, http.StatusOK, map[string]any{"users": orEmpty(found)})
		return
	}

	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			h.fail(w, r, badRequest(fmt.Sprintf("limit must be a number from 1 to %d", maxListLimit)))
			return
		}
		limit = n
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(b) == 0 {
			h.fail(w, r, badRequest("malformed cursor"))
			return
		}
		after = string(b)
	}
	var users []user
	next := ""
	h.store.read(func(st *state) {
		for _, rec := range st.companyUsers(company) {
			if rec.ID <= after {
				continue
			}
			if len(users) == limit {
				next = base64.RawURLEncoding.EncodeToString([]byte(users[len(users)-1].ID))
				break
			}
			users = append(users, rec.user)
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"users": orEmpty(users), "next_cursor": next})
}

// createRequest is the body of POST /users.
type createRequest struct {
	Email       string `json:"email"`
	GivenName   string `json:"given_name"`
	FamilyName  string `json:"family_name"`
	DisplayName string `json:"display_name"`
	Role        string `json:"role"`
	Active      *bool  `json:"active"` // default true
	Company     string `json:"company"`
	ExternalID  string `json:"external_id"`
	Provider    string `json:"provider"`
}

// create makes a user, or returns the one an earlier request with the same
// Idempotency-Key made.
func (h *hook) create(w http.ResponseWriter, r *http.Request, sub string) {
	var in createRequest
	if err := decodeBody(w, r, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	u := user{
		Email: in.Email, GivenName: in.GivenName, FamilyName: in.FamilyName, DisplayName: in.DisplayName,
		Role: in.Role, Active: in.Active == nil || *in.Active, Company: in.Company,
		ExternalID: in.ExternalID, Provider: in.Provider,
	}
	if err := validateUser(&u); err != nil {
		h.fail(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxKeyLen || !printableASCII(key) {
		h.fail(w, r, badRequest(fmt.Sprintf("Idempotency-Key must be 1 to %d printable ASCII characters", maxKeyLen)))
		return
	}
	canonical, _ := json.Marshal(u) // cannot fail: strings and a bool
	sum := sha256.Sum256(canonical)
	digest := hex.EncodeToString(sum[:])

	var out record
	status := http.StatusCreated
	err := h.store.update(func(st *state) error {
		if k, ok := st.keys[key]; ok && key != "" {
			if k.Digest != digest {
				return &hookError{http.StatusUnprocessableEntity, codeIdempotencyMismatch,
					"this Idempotency-Key was used for a different request"}
			}
			if rec, ok := st.users[k.UserID]; ok {
				out, status = rec, http.StatusOK
				return errNoChange
			}
			// The user was deleted since: create it again.
		}
		if err := st.conflict(&u, ""); err != nil {
			return err
		}
		id, err := h.store.newID()
		if err != nil {
			return err
		}
		now := h.store.now().UTC()
		u.ID = id
		out = record{user: u, CreatedBy: sub, CreatedAt: now, UpdatedAt: now}
		st.users[id] = out
		if key != "" {
			st.keys[key] = idempotencyKey{Key: key, UserID: id, Digest: digest, CreatedAt: now}
		}
		return nil
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, status, out.user)
}

func (h *hook) get(w http.ResponseWriter, r *http.Request, id string) {
	var rec record
	var ok bool
	h.store.read(func(st *state) { rec, ok = st.users[id] })
	if !ok {
		h.fail(w, r, notFound())
		return
	}
	writeJSON(w, http.StatusOK, rec.user)
}

// patchRequest is the body of PATCH /users/{id}: absent fields stay.
type patchRequest struct {
	Email       *string `json:"email"`
	GivenName   *string `json:"given_name"`
	FamilyName  *string `json:"family_name"`
	DisplayName *string `json:"display_name"`
	Role        *string `json:"role"`
	Active      *bool   `json:"active"`
	ExternalID  *string `json:"external_id"`
	Provider    *string `json:"provider"`
}

func (h *hook) patch(w http.ResponseWriter, r *http.Request, id string) {
	var in patchRequest
	if err := decodeBody(w, r, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	var out record
	err := h.store.update(func(st *state) error {
		rec, ok := st.users[id]
		if !ok {
			return notFound()
		}
		for _, f := range []struct {
			dst *string
			src *string
		}{
			{&rec.Email, in.Email}, {&rec.GivenName, in.GivenName}, {&rec.FamilyName, in.FamilyName},
			{&rec.DisplayName, in.DisplayName}, {&rec.Role, in.Role}, {&rec.ExternalID, in.ExternalID},
			{&rec.Provider, in.Provider},
		} {
			if f.src != nil {
				*f.dst = *f.src
			}
		}
		if in.Active != nil {
			rec.Active = *in.Active
		}
		if err := validateUser(&rec.user); err != nil {
			return err
		}
		if err := st.conflict(&rec.user, id); err != nil {
			return err
		}
		rec.UpdatedAt = h.store.now().UTC()
		st.users[id], out = rec, rec
		return nil
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out.user)
}

func (h *hook) deactivate(w http.ResponseWriter, r *http.Request, id string) {
	var out record
	err := h.store.update(func(st *state) error {
		rec, ok := st.users[id]
		switch {
		case !ok:
			return notFound()
		case !rec.Active:
			out = rec
			return errNoChange
		}
		rec.Active = false
		rec.UpdatedAt = h.store.now().UTC()
		st.users[id], out = rec, rec
		return nil
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out.user)
}

func (h *hook) delete(w http.ResponseWriter, r *http.Request, id string) {
	err := h.store.update(func(st *state) error {
		if _, ok := st.users[id]; !ok {
			return notFound()
		}
		delete(st.users, id)
		for k, v := range st.keys {
			if v.UserID == id {
				delete(st.keys, k)
			}
		}
		return nil
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// fail answers err: a *hookError as it is, anything else as a 500 whose
// detail goes to the log only.
func (h *hook) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *hookError
	if !errors.As(err, &he) {
		h.logger.ErrorContext(r.Context(), "demoapp: hook failed", slog.String("error", err.Error()))
		he = &hookError{http.StatusInternalServerError, codeInternal, "internal error"}
	}
	writeJSON(w, he.status, map[string]any{"error": map[string]string{"code": he.code, "message": he.message}})
}

// validateUser checks u against the contract's rules.
func validateUser(u *user) error {
	switch {
	case u.Email == "":
		return invalid("email is required")
	case len(u.Email) > 254 || !validEmail(u.Email):
		return invalid("email is not a valid address")
	case u.Company == "":
		return invalid("company is required")
	case engageauth.RoleRank(u.Role) == 0:
		return invalid("role must be agent, supervisor or account_holder")
	}
	for name, v := range map[string]string{
		"company": u.Company, "given_name": u.GivenName, "family_name": u.FamilyName,
		"display_name": u.DisplayName, "external_id": u.ExternalID, "provider": u.Provider,
	} {
		if len(v) > maxFieldLen || !utf8.ValidString(v) {
			return invalid(fmt.Sprintf("%s must be valid UTF-8 of at most %d bytes", name, maxFieldLen))
		}
	}
	return nil
}

// validEmail reports whether s is a bare addr-spec with a dotted domain.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	_, domain, ok := strings.Cut(s, "@")
	return ok && strings.Contains(domain, ".")
}

// decodeBody decodes one JSON value of at most maxHookBody bytes into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxHookBody))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return badRequest(fmt.Sprintf("body larger than %d bytes", maxHookBody))
		}
		return badRequest("body is not a JSON object of the expected shape")
	}
	if dec.More() {
		return badRequest("body holds more than one JSON value")
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// invalid is the error of a request that is well-formed but breaks a rule.
func invalid(msg string) error { return &hookError{http.StatusUnprocessableEntity, codeInvalid, msg} }

// badRequest is the error of a malformed request.
func badRequest(msg string) error { return &hookError{http.StatusBadRequest, codeInvalid, msg} }

func notFound() error { return &hookError{http.StatusNotFound, codeNotFound, "no such user"} }

func orEmpty(users []user) []user {
	if users == nil {
		return []user{}
	}
	return users
}

// writeJSON writes v as a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}
