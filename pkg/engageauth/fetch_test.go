package engageauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestVerifierFetchesLazilyAndCaches(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	srv := newJWKSServer(t, jwksOf(t, k))
	clk := newClock(testNow)
	v := mustVerifier(t, Options{JWKSURL: srv.url(), Now: clk.Now})
	srv.wantFetches(t, 0, "after NewVerifier")

	tok := k.sign(t, validClaims(testNow))
	for i := range 3 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("Verify #%d: %v", i, err)
		}
	}
	srv.wantFetches(t, 1, "after three verifications")
}

// TestVerifierRefetchOnUnknownKid rotates the server's keys and checks that
// an unknown kid triggers a fetch, at most one per RefreshInterval.
func TestVerifierRefetchOnUnknownKid(t *testing.T) {
	t.Parallel()
	k1, k2 := newTestKey(t, "k1"), newTestKey(t, "k2")
	srv := newJWKSServer(t, jwksOf(t, k1))
	clk := newClock(testNow)
	v := mustVerifier(t, Options{JWKSURL: srv.url(), Now: clk.Now})
	ctx := context.Background()

	if _, err := v.Verify(ctx, k1.sign(t, validClaims(testNow))); err != nil {
		t.Fatalf("Verify(k1): %v", err)
	}
	srv.wantFetches(t, 1, "first token")

	// The server rotates to k2 at once; the verifier has not seen k2 yet,
	// but the last fetch is too recent to fetch again.
	srv.set(http.StatusOK, jwksOf(t, k2, k1))
	tok2 := k2.sign(t, validClaims(testNow))
	clk.Advance(RefreshInterval - time.Second)
	if _, err := v.Verify(ctx, tok2); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify(k2) within RefreshInterval: %v; want ErrInvalidToken", err)
	}
	srv.wantFetches(t, 1, "unknown kid within RefreshInterval")

	clk.Advance(time.Second)
	if _, err := v.Verify(ctx, tok2); err != nil {
		t.Errorf("Verify(k2) after RefreshInterval: %v", err)
	}
	srv.wantFetches(t, 2, "unknown kid after RefreshInterval")

	// Random kids from an attacker cost at most one fetch per interval.
	for i := range 10 {
		forged := newTestKey(t, "forged").sign(t, validClaims(testNow))
		if _, err := v.Verify(ctx, forged); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Verify(forged #%d): %v; want ErrInvalidToken", i, err)
		}
	}
	srv.wantFetches(t, 2, "ten unknown kids right after a fetch")
	clk.Advance(RefreshInterval)
	for range 10 {
		_, _ = v.Verify(ctx, newTestKey(t, "forged").sign(t, validClaims(testNow)))
	}
	srv.wantFetches(t, 3, "ten unknown kids one interval later")

	// Both keys are still trusted after the refetches.
	for _, k := range []testKey{k1, k2} {
		if _, err := v.Verify(ctx, k.sign(t, validClaims(testNow))); err != nil {
			t.Errorf("Verify(%s) at the end: %v", k.kid, err)
		}
	}
	srv.wantFetches(t, 3, "known kids")
}

// TestVerifierConcurrentRefetch checks that concurrent verifications of
// tokens with unknown kids wait for a single fetch.
func TestVerifierConcurrentRefetch(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	srv := newJWKSServer(t, jwksOf(t, k))
	gate := make(chan struct{})
	srv.setGate(gate)
	v := mustVerifier(t, Options{JWKSURL: srv.url(), Now: newClock(testNow).Now})
	tok := k.sign(t, validClaims(testNow))

	const n = 20
	var started, done sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		started.Add(1)
		done.Go(func() {
			started.Done()
			_, errs[i] = v.Verify(context.Background(), tok)
		})
	}
	started.Wait()
	close(gate)
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Verify #%d: %v", i, err)
		}
	}
	srv.wantFetches(t, 1, "twenty concurrent first verifications")
}

func TestVerifierFetchFailures(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	tests := []struct {
		name    string
		status  int
		body    []byte
		wantErr string
	}{
		{"server error", http.StatusInternalServerError, []byte("oops"), "status 500"},
		{"not found", http.StatusNotFound, nil, "status 404"},
		{"not JSON", http.StatusOK, []byte("<html>login</html>"), "parsing JWKS"},
		{"no usable keys", http.StatusOK, []byte(`{"keys":[]}`), "no ES256 signing keys"},
		{"too large", http.StatusOK, []byte(`{"keys":[],"pad":"` + strings.Repeat("x", MaxJWKSSize) + `"}`), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newJWKSServer(t, nil)
			srv.set(tt.status, tt.body)
			clk := newClock(testNow)
			v := mustVerifier(t, Options{JWKSURL: srv.url(), Now: clk.Now})
			tok := k.sign(t, validClaims(testNow))

			_, err := v.Verify(context.Background(), tok)
			if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify with a broken JWKS: %v; want ErrKeysUnavailable containing %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify with a broken JWKS: %v; must not blame the token", err)
			}

			// Retries are throttled to RetryInterval, then succeed once the
			// server recovers.
			srv.set(http.StatusOK, jwksOf(t, k))
			clk.Advance(RetryInterval - time.Second)
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("Verify within RetryInterval: %v; want ErrKeysUnavailable", err)
			}
			srv.wantFetches(t, 1, "within RetryInterval")
			clk.Advance(time.Second)
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Errorf("Verify after recovery: %v", err)
			}
			srv.wantFetches(t, 2, "after RetryInterval")
		})
	}
}

// TestVerifierStaleKeys checks that keys are fetched again after MaxKeyAge,
// that keys dropped from the JWKS stop being trusted, and that an outage
// keeps the old keys in use.
func TestVerifierStaleKeys(t *testing.T) {
	t.Parallel()
	k1, k2 := newTestKey(t, "k1"), newTestKey(t, "k2")
	srv := newJWKSServer(t, jwksOf(t, k1, k2))
	clk := newClock(testNow)
	v := mustVerifier(t, Options{JWKSURL: srv.url(), Now: clk.Now})
	ctx := context.Background()
	verify := func(k testKey) error {
		_, err := v.Verify(ctx, k.sign(t, validClaims(clk.Now())))
		return err
	}
	if err := verify(k1); err != nil {
		t.Fatalf("Verify(k1): %v", err)
	}

	// An outage when the keys go stale: the cached keys still work.
	srv.set(http.StatusServiceUnavailable, nil)
	clk.Advance(MaxKeyAge)
	if err := verify(k1); err != nil {
		t.Errorf("Verify(k1) with stale keys during an outage: %v", err)
	}
	srv.wantFetches(t, 2, "stale keys")

	// The server drops k1; once the retry interval has passed the stale
	// cache is replaced and k1 is no longer trusted.
	srv.set(http.StatusOK, jwksOf(t, k2))
	clk.Advance(RetryInterval)
	if err := verify(k1); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify(k1) after it left the JWKS: %v; want ErrInvalidToken", err)
	}
	if err := verify(k2); err != nil {
		t.Errorf("Verify(k2): %v", err)
	}
	srv.wantFetches(t, 3, "after the JWKS changed")
}

// TestVerifierContextCancel checks that a caller whose context ends stops
// waiting, while the fetch completes for everyone else.
func TestVerifierContextCancel(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	srv := newJWKSServer(t, jwksOf(t, k))
	gate := make(chan struct{})
	srv.setGate(gate)
	v := mustVerifier(t, Options{JWKSURL: srv.url(), Now: newClock(testNow).Now})
	tok := k.sign(t, validClaims(testNow))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v; want ErrKeysUnavailable and context.Canceled", err)
	}

	// A second caller joins the fetch still in flight and gets its result.
	result := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), tok)
		result <- err
	}()
	close(gate)
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("Verify after the fetch completed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Verify did not return after the fetch completed")
	}
	srv.wantFetches(t, 1, "after a cancelled and a patient caller")
}
