// Command engage-demo runs the demo Engage application: an upstream behind
// engage-sso that verifies the X-Engage-Identity token against engage-sso's
// JWKS and shows who is signed in. It also implements the user hook at
// /hook/ (base URL http://<listen>/hook), through which engage-sso creates
// and updates users, and lists them to account holders at /users.
//
// Usage:
//
//	engage-demo [-listen 127.0.0.1:9000] [-jwks URL] [-issuer engage-sso] [-audience engage]
//		[-hook-audience user-hook] [-data users.json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/engage-sso/engage-sso/internal/demoapp"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// shutdownTimeout bounds how long in-flight requests may take to finish
// after a termination signal.
const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "engage-demo:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("engage-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	jwks := fs.String("jwks", "http://localhost:8080/sso/.well-known/jwks.json", "URL of engage-sso's JWKS")
	issuer := fs.String("issuer", engageauth.DefaultIssuer, "required token issuer (iss)")
	audience := fs.String("audience", engageauth.DefaultAudience, "required token audience (aud)")
	hookAudience := fs.String("hook-audience", demoapp.DefaultHookAudience, "required audience (aud) of user hook tokens")
	dataFile := fs.String("data", "", "JSON file to keep the users in (default: in memory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *hookAudience == *audience {
		return fmt.Errorf("-hook-audience and -audience are both %q; identity tokens would open the user hook", *audience)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	verifier, err := engageauth.NewVerifier(engageauth.Options{
		JWKSURL:  *jwks,
		Issuer:   *issuer,
		Audience: *audience,
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	hookVerifier, err := engageauth.NewVerifier(engageauth.Options{
		JWKSURL:  *jwks,
		Issuer:   *issuer,
		Audience: *hookAudience,
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	handler, err := demoapp.New(demoapp.Config{
		Verifier:     verifier,
		HookVerifier: hookVerifier,
		DataFile:     *dataFile,
		Logger:       logger,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("engage-demo listening", slog.String("addr", ln.Addr().String()), slog.String("jwks", *jwks),
		slog.String("user_hook", "http://"+ln.Addr().String()+"/hook"), slog.String("data", *dataFile))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	logger.Info("engage-demo shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}
