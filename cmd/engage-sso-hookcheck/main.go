// Command engage-sso-hookcheck tests a user hook implementation against
// engage-sso's contract (docs/upstream-api.md), the way engage-sso will call
// it: with ES256 bearer tokens for the audience "user-hook".
//
// Usage:
//
//	engage-sso-hookcheck -url https://engage.internal/sso-hook -key signing-key.pem \
//		[-aud user-hook] [-iss engage-sso] [-company hookcheck] [-other-company hookcheck-other]
//	engage-sso-hookcheck -key signing-key.pem -print-jwks
//	engage-sso-hookcheck -key signing-key.pem -print-token
//
// The key is a P-256 private key in PEM, the one engage-sso signs with, or
// any key whose public half the hook under test trusts: -print-jwks prints
// the JWKS to give a staging hook, and -print-token a bearer token (valid
// for a minute) to try the hook with curl. The checks create users with random
// emails in the two companies and delete them at the end. It prints PASS or
// FAIL per check and exits 1 if any failed, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/token"
	"github.com/engage-sso/engage-sso/internal/hookcheck"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the checks and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engage-sso-hookcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseURL := fs.String("url", "", "base URL of the user hook, e.g. https://engage.internal/sso-hook (required)")
	keyFile := fs.String("key", "", "P-256 private key (PEM) that signs the bearer tokens (required)")
	aud := fs.String("aud", "user-hook", "audience (aud) of the bearer tokens")
	iss := fs.String("iss", token.DefaultIssuer, "issuer (iss) of the bearer tokens")
	sub := fs.String("sub", "hookcheck", "subject (sub) of the bearer tokens")
	company := fs.String("company", hookcheck.DefaultCompany, "company to create test users in")
	other := fs.String("other-company", hookcheck.DefaultOtherCompany, "second company, for the isolation checks")
	timeout := fs.Duration("timeout", hookcheck.DefaultTimeout, "timeout of each request")
	printJWKS := fs.Bool("print-jwks", false, "print the JWKS of -key and exit")
	printToken := fs.Bool("print-token", false, "print a bearer token (valid for a minute) and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(msg string) int {
		fmt.Fprintln(stderr, "engage-sso-hookcheck:", msg)
		fs.Usage()
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usage(fmt.Sprintf("unexpected arguments %q", fs.Args()))
	case *keyFile == "":
		return usage("-key is required")
	case *baseURL == "" && !*printJWKS && !*printToken:
		return usage("-url is required")
	}

	pemData, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintln(stderr, "engage-sso-hookcheck:", err)
		return 2
	}
	key, err := token.ParsePEMKey(pemData)
	if err != nil {
		fmt.Fprintf(stderr, "engage-sso-hookcheck: %s: %v\n", *keyFile, err)
		return 2
	}
	minter := &token.Minter{Issuer: *iss, Keys: token.NewKeySet(key)}
	if *printJWKS {
		fmt.Fprintf(stdout, "%s\n", minter.Keys.JWKS())
		return 0
	}
	if *printToken {
		tok, err := minter.MintAudience(*aud, *sub, time.Minute)
		if err != nil {
			fmt.Fprintln(stderr, "engage-sso-hookcheck:", err)
			return 1
		}
		fmt.Fprintln(stdout, tok)
		return 0
	}

	results := hookcheck.Check(ctx, hookcheck.Target{
		BaseURL: *baseURL,
		Token: func(context.Context) (string, error) {
			return minter.MintAudience(*aud, *sub, time.Minute)
		},
		TokenForAudience: func(_ context.Context, a string) (string, error) {
			return minter.MintAudience(a, *sub, time.Minute)
		},
		Company:      *company,
		OtherCompany: *other,
		HTTPClient:   &http.Client{Timeout: *timeout},
	})
	failed := 0
	for _, r := range results {
		if r.Passed() {
			fmt.Fprintf(stdout, "PASS  %s\n", r.Name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL  %s: %v\n", r.Name, r.Err)
	}
	fmt.Fprintf(stdout, "\n%d checks, %d passed, %d failed\n", len(results), len(results)-failed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
