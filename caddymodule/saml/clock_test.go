package saml

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

// TestClockSkew checks the per-provider clock skew allowance through
// ParseResponse with real signed responses: each case dates a response
// off this SP's clock, as an IdP whose clock is wrong would.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)

	tests := []struct {
		name   string
		skew   time.Duration // Config.ClockSkew
		offset time.Duration // how far the IdP's clock is ahead (negative: behind)
		want   Reason
	}{
		{name: "on time", offset: 0},
		{name: "default allows 2m ahead", offset: 2 * time.Minute},
		{name: "default refuses 4m ahead", offset: 4 * time.Minute, want: ReasonNotYetValid},
		{name: "default allows 80s behind", offset: -80 * time.Second},
		{name: "default refuses 2m behind", offset: -2 * time.Minute, want: ReasonClockSkew},
		{name: "10m allows 9m ahead", skew: 10 * time.Minute, offset: 9 * time.Minute},
		{name: "10m refuses 11m ahead", skew: 10 * time.Minute, offset: 11 * time.Minute, want: ReasonNotYetValid},
		{name: "10m allows 8m behind", skew: 10 * time.Minute, offset: -8 * time.Minute},
		{name: "10m refuses 9m behind", skew: 10 * time.Minute, offset: -9 * time.Minute, want: ReasonClockSkew},
		{name: "1h allows 50m ahead", skew: time.Hour, offset: 50 * time.Minute},
		{name: "1h allows 55m behind", skew: time.Hour, offset: -55 * time.Minute},
		// Stricter than crewjam's process-wide 3 minutes: the SP's own
		// allowance decides, not the library's global.
		{name: "30s refuses 1m ahead", skew: 30 * time.Second, offset: time.Minute, want: ReasonNotYetValid},
		{name: "30s allows 20s ahead", skew: 30 * time.Second, offset: 20 * time.Second},
		{name: "30s refuses 2m behind", skew: 30 * time.Second, offset: -2 * time.Minute, want: ReasonClockSkew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			cfg.ClockSkew = tt.skew
			sp := newTestSP(t, cfg)
			resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{
				Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID,
				IssueInstant: now.Add(tt.offset),
			}))
			_, err := sp.ParseResponse(context.Background(), resp, []string{testRequestID})
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("ParseResponse() reason = %q (%v); want %q", got, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "clock") {
				t.Errorf("ParseResponse() error = %q; want it to name the clock as the likely cause", err)
			}
		})
	}
}

// TestClockSkewExpiry checks that NotOnOrAfter limits are extended by the
// provider's allowance, and that a response past them is expired, not a
// clock problem.
func TestClockSkewExpiry(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	tests := []struct {
		name       string
		skew       time.Duration
		issued     time.Duration // IssueInstant, relative to now
		subjectEnd time.Duration // SubjectConfirmationData NotOnOrAfter, relative to now
		want       Reason
	}{
		{name: "default: ended 2m ago", issued: -20 * time.Second, subjectEnd: -2 * time.Minute},
		{name: "default: ended 4m ago", issued: -20 * time.Second, subjectEnd: -4 * time.Minute, want: ReasonExpired},
		{name: "10m: ended 8m ago", skew: 10 * time.Minute, issued: -5 * time.Minute, subjectEnd: -8 * time.Minute},
		{name: "10m: ended 11m ago", skew: 10 * time.Minute, issued: -5 * time.Minute, subjectEnd: -11 * time.Minute, want: ReasonExpired},
		{name: "30s: ended 1m ago", skew: 30 * time.Second, issued: -20 * time.Second, subjectEnd: -time.Minute, want: ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			cfg.ClockSkew = tt.skew
			sp := newTestSP(t, cfg)
			resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{
				Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID,
				IssueInstant:        now.Add(tt.issued),
				SubjectNotOnOrAfter: now.Add(tt.subjectEnd),
			}))
			_, err := sp.ParseResponse(context.Background(), resp, []string{testRequestID})
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("ParseResponse() reason = %q (%v); want %q", got, err, tt.want)
			}
		})
	}
}

// TestClockSkewSideBySide runs SPs with different allowances at once on
// the same response: each applies its own (crewjam's limits are package
// globals, so this would fail if they were used).
func TestClockSkewSideBySide(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := testConfig(t, idp, now)
			want := Reason("")
			if i%2 == 0 {
				cfg.ClockSkew = time.Minute
				want = ReasonNotYetValid
			} else {
				cfg.ClockSkew = 10 * time.Minute
			}
			sp, err := New(cfg)
			if err != nil {
				t.Errorf("New() error: %v", err)
				return
			}
			resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{
				Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID,
				IssueInstant: now.Add(5 * time.Minute),
			}))
			_, err = sp.ParseResponse(context.Background(), resp, []string{testRequestID})
			if got := ReasonOf(err); got != want {
				t.Errorf("skew %s: ParseResponse() reason = %q (%v); want %q", cfg.ClockSkew, got, err, want)
			}
		}()
	}
	wg.Wait()
}

// TestClockSkewReplayRecord checks that an assertion's replay record lasts
// as long as the provider's allowance lets it be accepted.
func TestClockSkewReplayRecord(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	replay := &memReplay{}
	cfg := testConfig(t, idp, now)
	cfg.ClockSkew = 20 * time.Minute
	cfg.Replay = replay
	sp := newTestSP(t, cfg)
	issued := now.Add(-10 * time.Minute)
	a, err := sp.ParseResponse(context.Background(), samltest.Encode(idp.Response(t, samltest.ResponseOptions{
		Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID, IssueInstant: issued,
	})), []string{testRequestID})
	if err != nil {
		t.Fatalf("ParseResponse() error: %v", err)
	}
	replay.mu.Lock()
	until := replay.until[a.ID]
	replay.mu.Unlock()
	// Conditions NotOnOrAfter (70m after issue) plus the 20m allowance.
	if want := issued.Add(70 * time.Minute).Add(20 * time.Minute); !until.Equal(want) {
		t.Errorf("replay record until %v; want %v", until, want)
	}
}

func TestClockSkewConfig(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	for _, d := range []time.Duration{-time.Second, MaxClockSkew + time.Second} {
		cfg := testConfig(t, idp, now)
		cfg.ClockSkew = d
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "clock skew") {
			t.Errorf("New(ClockSkew %s) error = %v; want a clock skew error", d, err)
		}
	}
}

// TestVerifyClock checks the clock crewjam verifies at: now unless the
// response's dates need it moved, and never beyond the SP's allowances.
func TestVerifyClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	azure := func(issued time.Time) responseTimes {
		return responseTimes{
			responseIssueInstant: issued, assertionIssueInstant: issued,
			notBefore: issued.Add(-5 * time.Minute), notOnOrAfter: issued.Add(70 * time.Minute),
			confirmations: []confirmationTimes{{notOnOrAfter: issued.Add(5 * time.Minute)}},
		}
	}
	tests := []struct {
		name  string
		skew  time.Duration
		times responseTimes
		want  time.Time
	}{
		{"on time", DefaultClockSkew, azure(now), now},
		{"1m ahead needs no move", DefaultClockSkew, azure(now.Add(time.Minute)), now},
		{"10m ahead, 15m allowed", 15 * time.Minute, azure(now.Add(10 * time.Minute)), now.Add(7 * time.Minute)},
		{"10m behind, 15m allowed", 15 * time.Minute, azure(now.Add(-10 * time.Minute)), now.Add(-10*time.Minute + 90*time.Second)},
		{"a day behind, bounded", 15 * time.Minute, azure(now.Add(-24 * time.Hour)), now.Add(-(15*time.Minute + 90*time.Second + 12*time.Minute))},
		{"inconsistent dates", DefaultClockSkew, responseTimes{assertionIssueInstant: now.Add(time.Hour), notOnOrAfter: now}, now},
		{"no dates", DefaultClockSkew, responseTimes{}, now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := newTimeLimits(tt.skew).verifyClock(tt.times, now); !got.Equal(tt.want) {
				t.Errorf("verifyClock() = %v (now%+v); want %v (now%+v)", got, got.Sub(now), tt.want, tt.want.Sub(now))
			}
		})
	}
}
