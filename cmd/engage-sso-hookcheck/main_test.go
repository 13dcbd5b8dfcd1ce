package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/token"
	"github.com/engage-sso/engage-sso/internal/demoapp"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// writeKey writes a new P-256 key as PEM and returns its path and key set.
func writeKey(t *testing.T) (string, *token.KeySet) {
	t.Helper()
	key, err := token.GenerateKey(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pemData, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token.NewKeySet(key)
}

// demoHook serves the demo app trusting keys, and returns its hook URL.
func demoHook(t *testing.T, keys *token.KeySet) string {
	t.Helper()
	idv, err := engageauth.NewStaticVerifier(keys.JWKS(), engageauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hookv, err := engageauth.NewStaticVerifier(keys.JWKS(), engageauth.Options{Audience: "user-hook"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := demoapp.New(demoapp.Config{Verifier: idv, HookVerifier: hookv})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}

func TestRunPasses(t *testing.T) {
	t.Parallel()
	keyPath, keys := writeKey(t)
	url := demoHook(t, keys)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-url", url, "-key", keyPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d; want 0\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	out := stdout.String()
	for _, want := range []string{"PASS  create\n", "PASS  create/idempotent retry\n", "PASS  list/paging\n", " 0 failed\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("output has failures:\n%s", out)
	}
}

// TestRunFails: a hook that trusts another key fails the checks that need
// a valid token, and the command exits 1.
func TestRunFails(t *testing.T) {
	t.Parallel()
	keyPath, _ := writeKey(t)
	_, otherKeys := writeKey(t)
	url := demoHook(t, otherKeys)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-url", url, "-key", keyPath}, &stdout, &stderr); code != 1 {
		t.Fatalf("run = %d; want 1\nstdout:\n%s", code, &stdout)
	}
	out := stdout.String()
	for _, want := range []string{"PASS  auth/no token\n", "FAIL  create: ", "status 401"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPrintJWKS(t *testing.T) {
	t.Parallel()
	keyPath, keys := writeKey(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-key", keyPath, "-print-jwks"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run -print-jwks = %d; stderr %s", code, &stderr)
	}
	if got, want := strings.TrimSpace(stdout.String()), string(keys.JWKS()); got != want {
		t.Errorf("JWKS = %s; want %s", got, want)
	}
	var doc struct{ Keys []map[string]string }
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil || len(doc.Keys) != 1 || doc.Keys[0]["kid"] != keys.Current().ID {
		t.Errorf("JWKS %s: %v; want the key %s", &stdout, err, keys.Current().ID)
	}
}

func TestPrintToken(t *testing.T) {
	t.Parallel()
	keyPath, keys := writeKey(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-key", keyPath, "-print-token", "-aud", "my-hook", "-iss", "sso"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run -print-token = %d; stderr %s", code, &stderr)
	}
	v, err := engageauth.NewStaticVerifier(keys.JWKS(), engageauth.Options{Issuer: "sso", Audience: "my-hook"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("printed token does not verify: %v", err)
	}
	if id.UserID != "hookcheck" || id.ExpiresAt.Sub(id.IssuedAt) != time.Minute {
		t.Errorf("token sub %q, lifetime %s; want hookcheck, 1m", id.UserID, id.ExpiresAt.Sub(id.IssuedAt))
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	keyPath, _ := writeKey(t)
	notKey := filepath.Join(t.TempDir(), "not-a-key.pem")
	if err := os.WriteFile(notKey, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-h"}, 0, "-print-jwks"},
		{"unknown flag", []string{"-port", "1"}, 2, "flag provided but not defined"},
		{"no key", []string{"-url", "http://x"}, 2, "-key is required"},
		{"no URL", []string{"-key", keyPath}, 2, "-url is required"},
		{"extra argument", []string{"-key", keyPath, "-url", "http://x", "now"}, 2, "unexpected arguments"},
		{"missing key file", []string{"-key", keyPath + ".missing", "-url", "http://x"}, 2, "no such file"},
		{"not a key", []string{"-key", notKey, "-url", "http://x"}, 2, "no PEM private key"},
		{"bad URL", []string{"-key", keyPath, "-url", "hook"}, 1, "FAIL  setup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.want) {
				t.Errorf("run(%q) = %d, output %q%q; want %d mentioning %q", tt.args, code, &stdout, &stderr, tt.code, tt.want)
			}
		})
	}
}
