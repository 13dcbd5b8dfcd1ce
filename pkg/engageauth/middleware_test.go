package engageauth

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMiddleware(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	good := k.sign(t, validClaims(testNow))
	expired := k.sign(t, edit(validClaims(testNow), "exp", testNow.Add(-30*time.Minute).Unix()))

	v := mustStatic(t, jwksOf(t, k), Options{Now: newClock(testNow).Now})

	// An unreachable JWKS server: verification cannot happen at all.
	down := mustVerifier(t, Options{JWKSURL: "http://127.0.0.1:1/jwks.json", Now: newClock(testNow).Now})

	tests := []struct {
		name       string
		verifier   *Verifier
		header     map[string][]string
		wantStatus int
		wantBody   string
	}{
		{"valid", v, map[string][]string{"X-Engage-Identity": {good}}, http.StatusOK, "user-42 supervisor"},
		{"valid with spaces", v, map[string][]string{"X-Engage-Identity": {" " + good + " "}}, http.StatusOK, "user-42 supervisor"},
		{"missing", v, nil, http.StatusUnauthorized, `{"error":"missing_identity"}` + "\n"},
		{"empty", v, map[string][]string{"X-Engage-Identity": {""}}, http.StatusUnauthorized, `{"error":"missing_identity"}` + "\n"},
		{"other header only", v, map[string][]string{"X-Engage-Email": {"ada@example.com"}}, http.StatusUnauthorized, `{"error":"missing_identity"}` + "\n"},
		{"garbage", v, map[string][]string{"X-Engage-Identity": {"garbage"}}, http.StatusUnauthorized, `{"error":"invalid_identity"}` + "\n"},
		{"expired", v, map[string][]string{"X-Engage-Identity": {expired}}, http.StatusUnauthorized, `{"error":"invalid_identity"}` + "\n"},
		{"repeated", v, map[string][]string{"X-Engage-Identity": {good, good}}, http.StatusUnauthorized, `{"error":"invalid_identity"}` + "\n"},
		{"keys unavailable", down, map[string][]string{"X-Engage-Identity": {good}}, http.StatusServiceUnavailable, `{"error":"identity_unavailable"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			called := false
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				id, ok := FromContext(r.Context())
				if !ok {
					t.Error("next called without an identity in the context")
					return
				}
				_, _ = w.Write([]byte(id.UserID + " " + id.Role))
			})
			req := httptest.NewRequest(http.MethodGet, "/reports?x=1", nil)
			for name, values := range tt.header {
				for _, val := range values {
					req.Header.Add(name, val)
				}
			}
			rec := httptest.NewRecorder()
			tt.verifier.Middleware(next).ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d; want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q; want %q", got, tt.wantBody)
			}
			if wantCalled := tt.wantStatus == http.StatusOK; called != wantCalled {
				t.Errorf("next called = %v; want %v", called, wantCalled)
			}
			if tt.wantStatus != http.StatusOK {
				if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("Content-Type = %q; want JSON", ct)
				}
				if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control = %q; want no-store", cc)
				}
			}
		})
	}

}

// TestMiddlewareLogsReason checks that the reason for a rejection is logged,
// without the token.
func TestMiddlewareLogsReason(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	expired := k.sign(t, edit(validClaims(testNow), "exp", testNow.Add(-30*time.Minute).Unix()))
	var logs bytes.Buffer
	v := mustStatic(t, jwksOf(t, k), Options{
		Now:    newClock(testNow).Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.Header.Set("X-Engage-Identity", expired)
	v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, req)
	out := logs.String()
	if !strings.Contains(out, "code=invalid_identity") || !strings.Contains(out, "token is expired") {
		t.Errorf("log = %q; want the code and the reason", out)
	}
	if strings.Contains(out, strings.Split(expired, ".")[1]) {
		t.Errorf("log = %q; must not contain the token", out)
	}
}

func TestMiddlewareCustomHeader(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	v := mustStatic(t, jwksOf(t, k), Options{Now: newClock(testNow).Now, Header: "x-app-identity"})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-App-Identity", k.sign(t, validClaims(testNow)))
	req.Header.Set("X-Engage-Identity", "ignored")
	rec := httptest.NewRecorder()
	v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Errorf("status = %d; want %d (body %q)", rec.Code, http.StatusNoContent, rec.Body)
	}
}
