package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// userSample returns Sample(id) belonging to userID ("" for none).
func userSample(id, userID string) *session.Session {
	s := Sample(id)
	s.UserID = userID
	return s
}

func save(t *testing.T, s session.Store, ttl time.Duration, sessions ...*session.Session) {
	t.Helper()
	for _, x := range sessions {
		if err := s.SaveSession(ctx(t), x, ttl); err != nil {
			t.Fatalf("SaveSession(%q) = %v", x.ID, err)
		}
	}
}

// deleteUser calls DeleteUserSessions and returns the IDs sorted.
func deleteUser(t *testing.T, s session.Store, userID string) []string {
	t.Helper()
	ids, err := s.DeleteUserSessions(ctx(t), userID)
	if err != nil {
		t.Fatalf("DeleteUserSessions(%q) = %v", userID, err)
	}
	slices.Sort(ids)
	return ids
}

func testUserSessionsDelete(t *testing.T, s session.Store) {
	save(t, s, time.Hour,
		userSample("sid-a1", "u-a"), userSample("sid-a2", "u-a"), userSample("sid-a3", "u-a"),
		userSample("sid-b1", "u-b"), userSample("sid-anon", ""))

	if got, want := deleteUser(t, s, "u-a"), []string{"sid-a1", "sid-a2", "sid-a3"}; !slices.Equal(got, want) {
		t.Errorf("DeleteUserSessions(u-a) = %q; want %q", got, want)
	}
	for _, id := range []string{"sid-a1", "sid-a2", "sid-a3"} {
		if _, err := s.LoadSession(ctx(t), id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("LoadSession(%q) after revoke-all = %v; want ErrNotFound", id, err)
		}
	}
	for _, id := range []string{"sid-b1", "sid-anon"} {
		if _, err := s.LoadSession(ctx(t), id); err != nil {
			t.Errorf("LoadSession(%q) = %v; revoking u-a removed another user's session", id, err)
		}
	}
	if got := deleteUser(t, s, "u-a"); len(got) != 0 {
		t.Errorf("second DeleteUserSessions(u-a) = %q; want none", got)
	}
	if got := deleteUser(t, s, "u-nobody"); len(got) != 0 {
		t.Errorf("DeleteUserSessions(u-nobody) = %q; want none", got)
	}
	if _, err := s.DeleteUserSessions(ctx(t), ""); err == nil {
		t.Error(`DeleteUserSessions("") = nil error; want error`)
	}
	// A new session after a revoke-all is indexed afresh.
	save(t, s, time.Hour, userSample("sid-a4", "u-a"))
	if got, want := deleteUser(t, s, "u-a"), []string{"sid-a4"}; !slices.Equal(got, want) {
		t.Errorf("DeleteUserSessions(u-a) after new login = %q; want %q", got, want)
	}
}

func testUserIndexFollowsDelete(t *testing.T, s session.Store) {
	save(t, s, time.Hour, userSample("sid-1", "u-1"), userSample("sid-2", "u-1"), userSample("sid-3", "u-1"))
	if err := s.DeleteSession(ctx(t), "sid-1"); err != nil {
		t.Fatal(err)
	}
	// A zero TTL deletes too.
	save(t, s, 0, userSample("sid-2", "u-1"))
	if got, want := deleteUser(t, s, "u-1"), []string{"sid-3"}; !slices.Equal(got, want) {
		t.Errorf("DeleteUserSessions(u-1) after deletes = %q; want %q", got, want)
	}
}

func testUserIndexSkipsExpired(t *testing.T, s session.Store) {
	save(t, s, 150*time.Millisecond, userSample("sid-short", "u-x"))
	save(t, s, time.Hour, userSample("sid-long", "u-x"))
	eventually(t, "session expired", func() bool {
		_, err := s.LoadSession(ctx(t), "sid-short")
		return errors.Is(err, session.ErrNotFound)
	})
	if got, want := deleteUser(t, s, "u-x"), []string{"sid-long"}; !slices.Equal(got, want) {
		t.Errorf("DeleteUserSessions(u-x) = %q; want %q (expired sessions are not reported)", got, want)
	}
}

func testUserIndexRenewal(t *testing.T, s session.Store) {
	// Renewing a session (saving it again, maybe with a shorter TTL) keeps
	// one index entry that follows the latest TTL.
	a := userSample("sid-renew", "u-r")
	save(t, s, time.Hour, a)
	a.LastSeen = a.LastSeen.Add(time.Minute)
	save(t, s, 2*time.Hour, a)
	save(t, s, time.Hour, a)
	if got, want := deleteUser(t, s, "u-r"), []string{"sid-renew"}; !slices.Equal(got, want) {
		t.Errorf("DeleteUserSessions(u-r) = %q; want %q", got, want)
	}
}

// receive collects n IDs from ch, sorted, failing after a timeout.
func receive(t *testing.T, ch <-chan string, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case id, ok := <-ch:
			if !ok {
				t.Fatalf("Revocations channel closed after %q; want %d IDs", got, n)
			}
			got = append(got, id)
		case <-timeout:
			t.Fatalf("Revocations delivered %q within 5s; want %d IDs", got, n)
		}
	}
	slices.Sort(got)
	return got
}

// waitClosed drains ch until it is closed, failing after a timeout.
func waitClosed(t *testing.T, ch <-chan string, why string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("Revocations channel still open 5s after %s", why)
		}
	}
}

func testRevocations(t *testing.T, s session.Store) {
	a, err := s.Revocations(ctx(t))
	if err != nil {
		t.Fatalf("Revocations() = %v", err)
	}
	b, err := s.Revocations(ctx(t))
	if err != nil {
		t.Fatalf("second Revocations() = %v", err)
	}
	save(t, s, time.Hour, userSample("sid-r1", "u-r"), userSample("sid-r2", "u-r"), userSample("sid-r3", "u-r"))
	if err := s.DeleteSession(ctx(t), "sid-r1"); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan string{"first": a, "second": b} {
		if got, want := receive(t, ch, 1), []string{"sid-r1"}; !slices.Equal(got, want) {
			t.Errorf("%s receiver after DeleteSession = %q; want %q", name, got, want)
		}
	}
	if got := deleteUser(t, s, "u-r"); len(got) != 2 {
		t.Fatalf("DeleteUserSessions(u-r) = %q; want 2 IDs", got)
	}
	for name, ch := range map[string]<-chan string{"first": a, "second": b} {
		if got, want := receive(t, ch, 2), []string{"sid-r2", "sid-r3"}; !slices.Equal(got, want) {
			t.Errorf("%s receiver after DeleteUserSessions = %q; want %q", name, got, want)
		}
	}
	// Expiry and saves are not revocations.
	save(t, s, time.Hour, userSample("sid-r4", "u-r"))
	if err := s.DeleteSession(ctx(t), "sid-r5"); err != nil {
		t.Fatal(err)
	}
	if got, want := receive(t, a, 1), []string{"sid-r5"}; !slices.Equal(got, want) {
		t.Errorf("receiver after save and delete = %q; want %q", got, want)
	}
}

func testRevocationsClosedByContext(t *testing.T, s session.Store) {
	c, cancel := context.WithCancel(context.Background())
	ch, err := s.Revocations(c)
	if err != nil {
		cancel()
		t.Fatalf("Revocations() = %v", err)
	}
	cancel()
	waitClosed(t, ch, "its context ended")
	// Other receivers are unaffected.
	other, err := s.Revocations(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx(t), "sid-after"); err != nil {
		t.Fatal(err)
	}
	if got, want := receive(t, other, 1), []string{"sid-after"}; !slices.Equal(got, want) {
		t.Errorf("receiver = %q; want %q", got, want)
	}
}

func testRevocationsClosedByClose(t *testing.T, s session.Store) {
	ch, err := s.Revocations(context.Background())
	if err != nil {
		t.Fatalf("Revocations() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	waitClosed(t, ch, "Close")
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	if _, err := s.Revocations(context.Background()); err == nil {
		t.Error("Revocations() after Close = nil error; want error")
	}
}
