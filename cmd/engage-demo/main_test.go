package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestRunErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-port", "1"}, "flag provided but not defined"},
		{"extra argument", []string{"serve"}, `unexpected arguments ["serve"]`},
		{"bad JWKS URL", []string{"-jwks", "jwks.json", "-listen", "127.0.0.1:0"}, "not an absolute http or https URL"},
		{"bad listen address", []string{"-listen", "127.0.0.1:99999"}, "listening"},
		{"same audiences", []string{"-hook-audience", "engage"}, "identity tokens would open the user hook"},
		{"bad data file", []string{"-data", "/", "-listen", "127.0.0.1:0"}, "reading users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stderr)
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.want) {
				t.Errorf("run(%q) = %v (stderr %q); want error mentioning %q", tt.args, err, stderr.String(), tt.want)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run(-h) = %v; want flag.ErrHelp", err)
	}
	for _, f := range []string{"-listen", "-jwks", "-issuer", "-audience", "-hook-audience", "-data"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("usage %q does not mention %s", stderr.String(), f)
		}
	}
}

// TestRunShutsDown starts the server with an already cancelled context: it
// must listen, then shut down cleanly and return nil.
func TestRunShutsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr bytes.Buffer
	if err := run(ctx, []string{"-listen", "127.0.0.1:0"}, &stderr); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{"engage-demo listening", "engage-demo shutting down"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log %q lacks %q", stderr.String(), want)
		}
	}
}
