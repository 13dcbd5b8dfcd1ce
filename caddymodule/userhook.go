package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/engage-sso/engage-sso/caddymodule/directory"
	"github.com/engage-sso/engage-sso/caddymodule/identity"
)

// UserHook configures the upstream app's user hook (docs/upstream-api.md):
// the HTTP API through which engage-sso finds, creates and updates Engage
// accounts at sign-in (JIT provisioning).
type UserHook struct {
	// URL is the hook's base URL, such as https://engage.internal/sso-hook.
	// A company can override it with its own user_hook. Plain http is
	// accepted only for loopback hosts.
	URL string `json:"url,omitempty"`

	// Audience is the `aud` of the bearer tokens engage-sso signs for the
	// hook (with the identity-token keys, published in the JWKS). Default
	// "user-hook". It must differ from the identity token's audience.
	Audience string `json:"audience,omitempty"`

	// Timeout bounds each attempt of a call. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// MaxAttempts is how many times a call is tried on network errors,
	// 5xx and 429 answers (never on other 4xx). Default 3.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// TLS configures the connection to the hook: a private CA and, for
	// mutual TLS, a client certificate (cert_file and key_file), in
	// addition to the bearer token.
	TLS *TLSFiles `json:"tls,omitempty"`
}

const defaultHookAudience = "user-hook"

func (u *UserHook) setDefaults() {
	if u.Audience == "" {
		u.Audience = defaultHookAudience
	}
	if u.Timeout == 0 {
		u.Timeout = caddy.Duration(5 * time.Second)
	}
	if u.MaxAttempts == 0 {
		u.MaxAttempts = 3
	}
}

func checkHookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("%q is not an https URL", s)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%q must use https (plain http is allowed only for localhost)", s)
	}
	return nil
}

// hookMetrics counts user hook calls by operation and outcome.
func newHookMetric(reg *prometheus.Registry) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "engage_sso",
		Name:      "user_hook_calls_total",
		Help:      "Calls (attempts) to the upstream user hook, by operation and HTTP status (0: no answer).",
	}, []string{"op", "status"})
	if reg == nil {
		return c, nil
	}
	return register(reg, c)
}

// setupDirectories builds one directory client per distinct hook URL and
// assigns each company its client (nil: no hook, users are identified by
// their Azure object id).
func (a *App) setupDirectories(reg *prometheus.Registry) error {
	a.directories = map[string]*directory.Client{}
	if a.UserHook == nil && !anyCompanyHook(a.Companies) {
		return nil
	}
	hook := UserHook{}
	if a.UserHook != nil {
		hook = *a.UserHook
	}
	hook.setDefaults()
	if hook.Audience == a.Token.Audience {
		return fmt.Errorf("user_hook.audience %q must differ from token.audience, or identity tokens would open the hook", hook.Audience)
	}
	calls, err := newHookMetric(reg)
	if err != nil {
		return err
	}
	aud := hook.Audience
	for _, c := range a.Companies {
		u := c.UserHookURL
		if u == "" {
			u = hook.URL
		}
		if u == "" {
			continue
		}
		if a.directories[u] != nil {
			continue
		}
		client := &http.Client{}
		if hook.TLS != nil {
			tc, err := hook.TLS.config()
			if err != nil {
				return fmt.Errorf("user_hook tls: %w", err)
			}
			client.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
		}
		cl, err := directory.New(directory.Config{
			BaseURL: u,
			Token: func(context.Context) (string, error) {
				return a.minter.MintAudience(aud, "engage-sso", time.Minute)
			},
			HTTPClient:  client,
			Timeout:     time.Duration(hook.Timeout),
			MaxAttempts: hook.MaxAttempts,
			Observe: func(op string, status int, _ error, _ time.Duration) {
				calls.WithLabelValues(op, strconv.Itoa(status)).Inc()
			},
		})
		if err != nil {
			return fmt.Errorf("user hook %s: %w", u, err)
		}
		a.directories[u] = cl
	}
	return nil
}

func anyCompanyHook(cs []*Company) bool {
	for _, c := range cs {
		if c.UserHookURL != "" {
			return true
		}
	}
	return false
}

// directoryFor returns the company's hook client, or nil when it has none.
func (a *App) directoryFor(c *Company) *directory.Client {
	u := c.UserHookURL
	if u == "" && a.UserHook != nil {
		u = a.UserHook.URL
	}
	return a.directories[u]
}

// resolveUser gives id its Engage user id: through the company's user hook
// when it has one (finding, linking, creating with JIT, updating role and
// names), else the Azure object id (or the email for IdPs without one).
// It returns the refusal reason and HTTP status for the error page.
func (h *Handler) resolveUser(ctx context.Context, prov *provider, id *identity.Identity) (reason string, status int, err error) {
	dir := h.app.directoryFor(prov.company)
	if dir == nil {
		id.UserID = orDefault(id.ObjectID, id.Email)
		return "", 0, nil
	}
	u, err := dir.SignIn(ctx, directory.Login{
		Company:     id.Company,
		Provider:    id.Provider,
		ExternalID:  id.ObjectID,
		Email:       id.Email,
		GivenName:   id.GivenName,
		FamilyName:  id.FamilyName,
		DisplayName: id.DisplayName,
		Role:        id.Role.String(),
	}, prov.cfg.jit())
	switch {
	case err == nil:
		id.UserID = u.ID
		return "", 0, nil
	case errors.Is(err, directory.ErrNoAccount):
		return "no_account", http.StatusForbidden, err
	case errors.Is(err, directory.ErrInactive):
		return "account_disabled", http.StatusForbidden, err
	case errors.Is(err, directory.ErrEmailTaken):
		return "email_taken", http.StatusForbidden, err
	case errors.Is(err, directory.ErrInvalid), errors.Is(err, directory.ErrConflict), errors.Is(err, directory.ErrNotFound):
		return "account_setup_failed", http.StatusForbidden, err
	default: // unavailable, unauthorized, protocol errors, cancellations
		return "directory_unavailable", http.StatusServiceUnavailable, err
	}
}
