// Command dev-idp runs the local Azure-like SAML identity provider for
// demos and tests: a stand-in for Azure AD (Microsoft Entra ID) that needs
// no Azure account. It is for development only.
//
// Usage:
//
//	dev-idp [-listen 127.0.0.1:9001] [-base-url http://localhost:9001]
//	        [-tenant <tenant id>] [-sp <SP metadata URL>]...
//
// For example, for the demo Caddyfile:
//
//	go run ./cmd/dev-idp -sp http://localhost:8080/sso/saml/contoso/metadata
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/engage-sso/engage-sso/internal/devidp"
)

// shutdownTimeout is how long in-flight requests get to finish on SIGINT
// or SIGTERM.
const shutdownTimeout = 10 * time.Second

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "dev-idp:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("dev-idp", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on")
	baseURL := fs.String("base-url", "http://localhost:9001", "URL the IdP is reached at by browsers and service providers")
	tenant := fs.String("tenant", devidp.DemoTenantID, "Azure tenant id (GUID) in the entity ID and endpoint paths")
	var sps stringList
	fs.Var(&sps, "sp", "metadata URL of a service provider to sign users in to (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	logCfg := zap.NewDevelopmentConfig()
	logCfg.DisableStacktrace = true
	logger, err := logCfg.Build()
	if err != nil {
		return fmt.Errorf("create logger: %w", err)
	}
	defer func() { _ = logger.Sync() }()

	idp, err := devidp.New(devidp.Config{
		BaseURL:          *baseURL,
		TenantID:         *tenant,
		ServiceProviders: sps,
		Logger:           logger,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           idp,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	logger.Info("dev IdP listening (local development IdP, not Azure)",
		zap.String("listen", ln.Addr().String()),
		zap.String("base_url", *baseURL),
		zap.String("entity_id", idp.EntityID()),
		zap.String("metadata_url", idp.MetadataURL()),
		zap.String("my_apps", idp.MyAppsURL()),
		zap.Strings("service_providers", sps),
	)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
