// Package hookcheck tests an implementation of engage-sso's user hook
// (docs/upstream-api.md) against the contract, over HTTP.
//
// Use [Run] in a Go test of your hook, or [Check] (as the
// engage-sso-hookcheck command does) anywhere else:
//
//	hookcheck.Run(t, hookcheck.Target{
//		BaseURL: srv.URL + "/hook",
//		Token:   func(ctx context.Context) (string, error) { return minter.MintAudience("user-hook", "hookcheck", time.Minute) },
//	})
//
// The suite creates users with random emails and external ids in
// Target.Company and Target.OtherCompany, checks every operation and error
// of the contract, and deletes the users it created at the end, also when a
// check fails. Point it at a test company: listing pages through all of the
// company's users.
package hookcheck

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Defaults of a Target.
const (
	DefaultCompany      = "hookcheck"
	DefaultOtherCompany = "hookcheck-other"
	DefaultTimeout      = 10 * time.Second
)

// Target is the hook under test.
type Target struct {
	// BaseURL is the hook's base URL, such as http://localhost:9000/hook;
	// the operations are at {BaseURL}/users…. Required.
	BaseURL string

	// Token returns a valid bearer token: an ES256 JWT from a key the hook
	// trusts, with the audience and issuer it expects. Required.
	Token func(ctx context.Context) (string, error)

	// TokenForAudience, if set, returns a token signed like Token's but for
	// another audience; it enables the check that such tokens are refused.
	TokenForAudience func(ctx context.Context, aud string) (string, error)

	// Company and OtherCompany are the companies test users are created
	// in. Defaults: DefaultCompany and DefaultOtherCompany.
	Company      string
	OtherCompany string

	// HTTPClient sends the requests. Default: a client with a timeout of
	// DefaultTimeout.
	HTTPClient *http.Client

	// Rand is the source of the test data's random parts. Default:
	// crypto/rand.Reader.
	Rand io.Reader
}

// Result is the outcome of one check.
type Result struct {
	// Name names the check, such as "create/idempotent retry".
	Name string
	// Err says why the check failed; nil if it passed.
	Err error
}

// Passed reports whether the check passed.
func (r Result) Passed() bool { return r.Err == nil }

// Check runs the whole suite against target and returns one result per
// check, in order, then one named "cleanup" if deleting the test users
// failed. Checks that depend on an earlier one that failed fail too.
func Check(ctx context.Context, target Target) []Result {
	s, err := newSuite(target)
	if err != nil {
		return []Result{{Name: "setup", Err: err}}
	}
	var results []Result
	for _, c := range s.checks() {
		results = append(results, Result{Name: c.name, Err: c.run(ctx, s)})
	}
	if err := s.cleanup(context.WithoutCancel(ctx)); err != nil {
		results = append(results, Result{Name: "cleanup", Err: err})
	}
	return results
}

// Run runs the suite as subtests of t, one per check, and deletes the test
// users when t ends.
func Run(t *testing.T, target Target) {
	t.Helper()
	s, err := newSuite(target)
	if err != nil {
		t.Fatalf("hookcheck: %v", err)
	}
	t.Cleanup(func() {
		if err := s.cleanup(context.Background()); err != nil {
			t.Errorf("hookcheck cleanup: %v", err)
		}
	})
	for _, c := range s.checks() {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(t.Context(), s); err != nil {
				t.Error(err)
			}
		})
	}
}

// suite is one run of the checks, with the state they share.
type suite struct {
	target Target
	base   string
	client *http.Client
	tag    string // random, in every test user's email

	created []string // ids of users to delete at the end

	ada, bob, other *user // users made by the create checks
	adaBody         map[string]any
	adaKey          string
}

func newSuite(t Target) (*suite, error) {
	u, err := url.Parse(t.BaseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("parsing base URL: %w", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("base URL %q is not an absolute http or https URL", t.BaseURL)
	case t.Token == nil:
		return nil, errors.New("no token function")
	}
	if t.Company == "" {
		t.Company = DefaultCompany
	}
	if t.OtherCompany == "" {
		t.OtherCompany = DefaultOtherCompany
	}
	if t.Company == t.OtherCompany {
		return nil, fmt.Errorf("company and other company are both %q", t.Company)
	}
	if t.Rand == nil {
		t.Rand = rand.Reader
	}
	client := t.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	tag, err := randomHex(t.Rand, 5)
	if err != nil {
		return nil, err
	}
	return &suite{target: t, base: strings.TrimRight(t.BaseURL, "/"), client: client, tag: tag}, nil
}

// check is one named check.
type check struct {
	name string
	run  func(ctx context.Context, s *suite) error
}

// checks returns the checks in the order they run; later ones use users
// the earlier ones created.
func (s *suite) checks() []check {
	cs := []check{
		{"auth/no token", checkNoToken},
		{"auth/malformed token", checkMalformedToken},
		{"auth/token from an unknown key", checkForeignKey},
	}
	if s.target.TokenForAudience != nil {
		cs = append(cs, check{"auth/token for another audience", checkWrongAudience})
	}
	return append(cs,
		check{"create", checkCreate},
		check{"create/idempotent retry", checkIdempotentRetry},
		check{"create/second user", checkCreateSecond},
		check{"create/duplicate email", checkDuplicateEmail},
		check{"create/duplicate external id", checkDuplicateExternalID},
		check{"create/same email in another company", checkOtherCompany},
		check{"create/invalid", checkCreateInvalid},
		check{"find by email", checkFindByEmail},
		check{"find by email/none", checkFindByEmailNone},
		check{"find by external id", checkFindByExternalID},
		check{"find by external id/none", checkFindByExternalIDNone},
		check{"get", checkGet},
		check{"get/unknown", checkGetUnknown},
		check{"update", checkUpdate},
		check{"update/duplicate email", checkUpdateDuplicate},
		check{"update/unknown", checkUpdateUnknown},
		check{"deactivate", checkDeactivate},
		check{"deactivate/unknown", checkDeactivateUnknown},
		check{"list/paging", checkList},
		check{"delete", checkDelete},
	)
}

// cleanup deletes the users the suite created; a 404 counts as deleted.
func (s *suite) cleanup(ctx context.Context) error {
	var errs []error
	for _, id := range s.created {
		resp, err := s.do(ctx, http.MethodDelete, userPath(id), nil, nil, withToken)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("deleting test user %s: %w", id, err))
		case resp.status != http.StatusNoContent && resp.status != http.StatusOK && resp.status != http.StatusNotFound:
			errs = append(errs, fmt.Errorf("deleting test user %s: status %d", id, resp.status))
		}
	}
	s.created = nil
	return errors.Join(errs...)
}

func randomHex(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return fmt.Sprintf("%x", b), nil
}

// randomUUID returns a random UUID, the shape of an Azure object id.
func (s *suite) randomUUID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.target.Rand, b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
