package saml

import (
	"fmt"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
)

// DefaultClockSkew is the clock skew allowed between the IdP and this SP
// when Config.ClockSkew is zero: 3 minutes, as Shibboleth and crewjam/saml.
const DefaultClockSkew = 3 * time.Minute

// MaxClockSkew is the largest Config.ClockSkew New accepts. A larger
// allowance would make a stolen response usable for too long; a clock that
// far off needs fixing, not tolerating.
const MaxClockSkew = time.Hour

// baseIssueDelay is how long after its IssueInstant a response is accepted
// with the default clock skew: 90 seconds, crewjam's MaxIssueDelay. It
// covers the time between Azure issuing the response and the browser
// posting it, plus some drift.
const baseIssueDelay = 90 * time.Second

// timeLimits are the time allowances of one SP: how far in the future a
// response may be dated (skew), and how old its IssueInstant may be
// (maxAge).
type timeLimits struct {
	skew   time.Duration
	maxAge time.Duration
}

// newTimeLimits returns the limits for a clock skew allowance. The age
// limit grows with the skew beyond the default: an IdP whose clock is
// behind by the whole allowance dates its responses that much in the past.
func newTimeLimits(skew time.Duration) timeLimits {
	return timeLimits{skew: skew, maxAge: baseIssueDelay + max(0, skew-DefaultClockSkew)}
}

// responseTimes are the times of a response that decide whether it is
// valid now. Zero times are absent.
type responseTimes struct {
	responseIssueInstant  time.Time
	assertionIssueInstant time.Time
	notBefore             time.Time // Conditions NotBefore
	notOnOrAfter          time.Time // Conditions NotOnOrAfter
	// confirmations are the NotBefore and NotOnOrAfter of each bearer
	// SubjectConfirmationData.
	confirmations []confirmationTimes
}

type confirmationTimes struct{ notBefore, notOnOrAfter time.Time }

// timesOf returns the times of a, a verified assertion, with the
// Response's IssueInstant.
func timesOf(a *crewjam.Assertion, responseIssueInstant time.Time) responseTimes {
	t := responseTimes{responseIssueInstant: responseIssueInstant, assertionIssueInstant: a.IssueInstant}
	if c := a.Conditions; c != nil {
		t.notBefore, t.notOnOrAfter = c.NotBefore, c.NotOnOrAfter
	}
	if s := a.Subject; s != nil {
		for _, sc := range s.SubjectConfirmations {
			if d := sc.SubjectConfirmationData; sc.Method == bearerMethod && d != nil {
				t.confirmations = append(t.confirmations, confirmationTimes{d.NotBefore, d.NotOnOrAfter})
			}
		}
	}
	return t
}

// check refuses a response whose times are not acceptable at now under
// the limits. A date in the future beyond the skew is ReasonNotYetValid; an
// IssueInstant too old while the response is still within its validity
// period is ReasonClockSkew (a fresh response from an IdP whose clock is
// behind looks like that); a passed NotOnOrAfter is ReasonExpired.
func (l timeLimits) check(t responseTimes, now time.Time) *Error {
	future := func(what string, at time.Time) *Error {
		if at.IsZero() || !at.After(now.Add(l.skew)) {
			return nil
		}
		return refuse(ReasonNotYetValid, "%s %s is %s ahead of this server's clock (allowed clock skew %s): the clock of the IdP or of this server is wrong",
			what, at.UTC().Format(time.RFC3339), at.Sub(now).Round(time.Second), l.skew)
	}
	for _, c := range []struct {
		what string
		at   time.Time
	}{
		{"Response IssueInstant", t.responseIssueInstant},
		{"Assertion IssueInstant", t.assertionIssueInstant},
		{"Conditions NotBefore", t.notBefore},
	} {
		if err := future(c.what, c.at); err != nil {
			return err
		}
	}
	for _, c := range t.confirmations {
		if err := future("SubjectConfirmationData NotBefore", c.notBefore); err != nil {
			return err
		}
	}

	// NotOnOrAfter is exclusive (saml-core §2.5.1.2). A bearer
	// SubjectConfirmationData must have one; a zero time has passed.
	passed := func(notOnOrAfter time.Time) bool { return !now.Before(notOnOrAfter.Add(l.skew)) }
	if !t.notOnOrAfter.IsZero() && passed(t.notOnOrAfter) {
		return refuse(ReasonExpired, "the assertion's Conditions NotOnOrAfter %s has passed (allowed clock skew %s)", t.notOnOrAfter.UTC().Format(time.RFC3339), l.skew)
	}
	if len(t.confirmations) == 0 {
		return refuse(ReasonMalformed, "the assertion has no bearer SubjectConfirmationData")
	}
	for _, c := range t.confirmations {
		if passed(c.notOnOrAfter) {
			return refuse(ReasonExpired, "the SubjectConfirmationData NotOnOrAfter %s has passed (allowed clock skew %s)", c.notOnOrAfter.UTC().Format(time.RFC3339), l.skew)
		}
	}

	for _, c := range []struct {
		what string
		at   time.Time
	}{
		{"Response IssueInstant", t.responseIssueInstant},
		{"Assertion IssueInstant", t.assertionIssueInstant},
	} {
		if c.at.IsZero() || !now.After(c.at.Add(l.maxAge)) {
			continue
		}
		return refuse(ReasonClockSkew, "%s %s is %s old, more than the %s allowed, although the response is still within its validity period: the clock of the IdP or of this server is probably wrong (or the response was held back)",
			c.what, c.at.UTC().Format(time.RFC3339), now.Sub(c.at).Round(time.Second), l.maxAge)
	}
	return nil
}

// verifyClock returns the time at which crewjam verifies a response whose
// (unverified) times are t: now, moved as little as needed into the window
// in which crewjam's fixed, process-wide allowances (MaxClockSkew,
// MaxIssueDelay) accept t, but at most the SP's own allowance away from
// now. The SP's own limits are then applied to the verified times at the
// real now, by check. So crewjam does the signature and every other
// check, and each provider has its own clock skew.
func (l timeLimits) verifyClock(t responseTimes, now time.Time) time.Time {
	g, d := crewjam.MaxClockSkew, crewjam.MaxIssueDelay
	var lo, hi time.Time
	lower := func(v time.Time) {
		if !v.IsZero() && (lo.IsZero() || v.After(lo)) {
			lo = v
		}
	}
	upper := func(v time.Time) {
		if !v.IsZero() && (hi.IsZero() || v.Before(hi)) {
			hi = v
		}
	}
	for _, ii := range []time.Time{t.responseIssueInstant, t.assertionIssueInstant} {
		if !ii.IsZero() {
			lower(ii.Add(-g))
			upper(ii.Add(d))
		}
	}
	if !t.notBefore.IsZero() {
		lower(t.notBefore.Add(-g))
	}
	if !t.notOnOrAfter.IsZero() {
		upper(t.notOnOrAfter.Add(g - time.Nanosecond))
	}
	for _, c := range t.confirmations {
		if !c.notBefore.IsZero() {
			lower(c.notBefore.Add(-g))
		}
		if !c.notOnOrAfter.IsZero() {
			upper(c.notOnOrAfter.Add(g - time.Nanosecond))
		}
	}
	if !lo.IsZero() && !hi.IsZero() && lo.After(hi) {
		return now // inconsistent times: crewjam refuses them at now
	}
	at := now
	if !lo.IsZero() && at.Before(lo) {
		at = lo
	}
	if !hi.IsZero() && at.After(hi) {
		at = hi
	}
	// Never further from now than this SP's allowances reach: a response
	// dated beyond them is refused by crewjam too, and certificates are
	// checked at a time close to now.
	bound := l.skew + l.maxAge
	if at.Before(now.Add(-bound)) {
		at = now.Add(-bound)
	}
	if at.After(now.Add(bound)) {
		at = now.Add(bound)
	}
	return at
}

// replayUntil returns until when the ID of an assertion with times t must
// be remembered: the latest moment at which check could still accept it.
func (l timeLimits) replayUntil(t responseTimes) time.Time {
	until := t.assertionIssueInstant.Add(l.maxAge)
	if t.notOnOrAfter.After(until) {
		until = t.notOnOrAfter
	}
	for _, c := range t.confirmations {
		if c.notOnOrAfter.After(until) {
			until = c.notOnOrAfter
		}
	}
	return until.Add(l.skew)
}

// crewjamAt returns a copy of the crewjam ServiceProvider whose clock
// reads at. The copy is per call, so concurrent calls do not interfere.
func (sp *SP) crewjamAt(at time.Time) *crewjam.ServiceProvider {
	c := *sp.sp
	c.Clock = dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: func() time.Time { return at }})
	return &c
}

// checkClockSkew checks a Config.ClockSkew.
func checkClockSkew(d time.Duration) error {
	if d < 0 || d > MaxClockSkew {
		return fmt.Errorf("clock skew %s is out of range: use 0 (the default, %s) up to %s", d, DefaultClockSkew, MaxClockSkew)
	}
	return nil
}
