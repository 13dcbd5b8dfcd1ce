// Package storetest is the conformance suite every session.Store must pass.
// A store's test calls Run with a function that opens a fresh, empty store.
//
// The suite uses the real clock with short TTLs, since a networked store
// (Redis) expires keys on its own clock; it polls instead of sleeping a
// fixed time. Its tests run in parallel, each on its own store.
package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// Open returns a new, empty store for one test. The suite closes it. Open
// is called from parallel tests, and stores it returns must not see each
// other's data (for a shared server: a distinct key prefix per store).
type Open func(t *testing.T) session.Store

// Run runs the whole conformance suite against the stores open returns.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s session.Store)
	}{
		{"SessionRoundTrip", testSessionRoundTrip},
		{"SessionMissing", testSessionMissing},
		{"SessionReplace", testSessionReplace},
		{"SessionDelete", testSessionDelete},
		{"SessionExpires", testSessionExpires},
		{"SessionCopyIsolated", testSessionCopyIsolated},
		{"SessionRejectsEmptyID", testSessionRejectsEmptyID},
		{"RenewOnlyExisting", testRenewOnlyExisting},
		{"PendingTakeOnce", testPendingTakeOnce},
		{"PendingMissing", testPendingMissing},
		{"PendingExpires", testPendingExpires},
		{"PendingConcurrentTake", testPendingConcurrentTake},
		{"ReplayCache", testReplayCache},
		{"ReplayCacheConcurrent", testReplayCacheConcurrent},
		{"ReplayCacheExpires", testReplayCacheExpires},
		{"CancelledContext", testCancelledContext},
		{"Ping", testPing},
		{"UserSessionsDelete", testUserSessionsDelete},
		{"UserIndexFollowsDelete", testUserIndexFollowsDelete},
		{"UserIndexSkipsExpired", testUserIndexSkipsExpired},
		{"UserIndexRenewal", testUserIndexRenewal},
		{"Revocations", testRevocations},
		{"RevocationsClosedByContext", testRevocationsClosedByContext},
		{"RevocationsClosedByClose", testRevocationsClosedByClose},
		{"BlobRoundTrip", testBlobRoundTrip},
		{"BlobInvalidName", testBlobInvalidName},
		{"BlobCompareAndSwap", testBlobCompareAndSwap},
		{"BlobCompareAndSwapConcurrent", testBlobCompareAndSwapConcurrent},
		{"CacheRoundTrip", testCacheRoundTrip},
		{"CacheReplace", testCacheReplace},
		{"CacheExpires", testCacheExpires},
		{"CacheCopyIsolated", testCacheCopyIsolated},
		{"CacheInvalid", testCacheInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tt.fn(t, s)
		})
	}
}

// Sample returns a fully populated session with the given ID.
func Sample(id string) *session.Session {
	now := time.Now().UTC().Truncate(time.Second)
	return &session.Session{
		ID:           id,
		UserID:       "u-123",
		Email:        "megan.bowen@contoso.com",
		GivenName:    "Megan",
		FamilyName:   "Bowen",
		DisplayName:  "Megan Bowen",
		Role:         "supervisor",
		Company:      "contoso",
		Provider:     "contoso",
		ObjectID:     "a2c4e6f8-0000-4000-8000-000000000001",
		TenantID:     "4f7c2a1e-9b3d-4c5e-8f60-1a2b3c4d5e6f",
		NameID:       "megan.bowen@contoso.com",
		NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
		SessionIndex: "_a1b2c3",
		CreatedAt:    now,
		LastSeen:     now,
		ExpiresAt:    now.Add(8 * time.Hour),
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it is true or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sameSession(a, b *session.Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Email == b.Email &&
		a.GivenName == b.GivenName && a.FamilyName == b.FamilyName && a.DisplayName == b.DisplayName &&
		a.Role == b.Role && a.Company == b.Company && a.Provider == b.Provider &&
		a.ObjectID == b.ObjectID && a.TenantID == b.TenantID && a.NameID == b.NameID &&
		a.NameIDFormat == b.NameIDFormat && a.SessionIndex == b.SessionIndex &&
		a.CreatedAt.Equal(b.CreatedAt) && a.LastSeen.Equal(b.LastSeen) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func testSessionRoundTrip(t *testing.T, s session.Store) {
	want := Sample("sid-roundtrip")
	if err := s.SaveSession(ctx(t), want, time.Hour); err != nil {
		t.Fatalf("SaveSession() = %v", err)
	}
	got, err := s.LoadSession(ctx(t), want.ID)
	if err != nil {
		t.Fatalf("LoadSession() = %v", err)
	}
	if !sameSession(got, want) {
		t.Errorf("LoadSession() = %+v; want %+v", got, want)
	}
}

func testSessionMissing(t *testing.T, s session.Store) {
	if _, err := s.LoadSession(ctx(t), "nope"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadSession(missing) error = %v; want ErrNotFound", err)
	}
}

func testSessionReplace(t *testing.T, s session.Store) {
	a := Sample("sid-replace")
	if err := s.SaveSession(ctx(t), a, time.Hour); err != nil {
		t.Fatal(err)
	}
	b := Sample("sid-replace")
	b.Role = "account_holder"
	b.LastSeen = b.LastSeen.Add(time.Minute)
	if err := s.SaveSession(ctx(t), b, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadSession(ctx(t), a.ID)
	if err != nil || got.Role != "account_holder" || !got.LastSeen.Equal(b.LastSeen) {
		t.Errorf("LoadSession() after replace = %+v, %v; want role account_holder", got, err)
	}
}

func testSessionDelete(t *testing.T, s session.Store) {
	a := Sample("sid-delete")
	other := Sample("sid-keep")
	for _, x := range []*session.Session{a, other} {
		if err := s.SaveSession(ctx(t), x, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSession(ctx(t), a.ID); err != nil {
		t.Fatalf("DeleteSession() = %v", err)
	}
	if _, err := s.LoadSession(ctx(t), a.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadSession(deleted) error = %v; want ErrNotFound", err)
	}
	if _, err := s.LoadSession(ctx(t), other.ID); err != nil {
		t.Errorf("LoadSession(other) = %v; deleting one session removed another", err)
	}
	if err := s.DeleteSession(ctx(t), "never-existed"); err != nil {
		t.Errorf("DeleteSession(missing) = %v; want nil", err)
	}
}

func testSessionExpires(t *testing.T, s session.Store) {
	a := Sample("sid-expires")
	if err := s.SaveSession(ctx(t), a, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadSession(ctx(t), a.ID); err != nil {
		t.Fatalf("LoadSession() right after save = %v", err)
	}
	eventually(t, "session expired", func() bool {
		_, err := s.LoadSession(ctx(t), a.ID)
		return errors.Is(err, session.ErrNotFound)
	})
	// A zero or negative TTL deletes.
	b := Sample("sid-zero-ttl")
	if err := s.SaveSession(ctx(t), b, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSession(ctx(t), b, 0); err != nil {
		t.Fatalf("SaveSession(ttl 0) = %v", err)
	}
	if _, err := s.LoadSession(ctx(t), b.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadSession() after ttl 0 = %v; want ErrNotFound", err)
	}
}

func testSessionCopyIsolated(t *testing.T, s session.Store) {
	a := Sample("sid-copy")
	if err := s.SaveSession(ctx(t), a, time.Hour); err != nil {
		t.Fatal(err)
	}
	a.Role = "changed-after-save"
	got, err := s.LoadSession(ctx(t), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Email = "changed-after-load"
	again, err := s.LoadSession(ctx(t), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Role != "supervisor" || again.Email != "megan.bowen@contoso.com" {
		t.Errorf("stored session shares memory with the caller: %+v", again)
	}
}

func testSessionRejectsEmptyID(t *testing.T, s session.Store) {
	if err := s.SaveSession(ctx(t), Sample(""), time.Hour); err == nil {
		t.Error("SaveSession(empty ID) = nil; want error")
	}
	if err := s.SaveSession(ctx(t), nil, time.Hour); err == nil {
		t.Error("SaveSession(nil) = nil; want error")
	}
}

func samplePending() *session.PendingLogin {
	return &session.PendingLogin{
		RequestID: "id-4a9f2c",
		Provider:  "contoso",
		ReturnTo:  "/reports?week=12",
		Binding:   "bnd",
		CreatedAt: time.Now().UTC().Truncate(time.Second),
	}
}

func testPendingTakeOnce(t *testing.T, s session.Store) {
	want := samplePending()
	if err := s.SavePending(ctx(t), "relay-1", want, time.Minute); err != nil {
		t.Fatalf("SavePending() = %v", err)
	}
	got, err := s.TakePending(ctx(t), "relay-1")
	if err != nil {
		t.Fatalf("TakePending() = %v", err)
	}
	if got.RequestID != want.RequestID || got.Provider != want.Provider || got.ReturnTo != want.ReturnTo ||
		got.Binding != want.Binding || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("TakePending() = %+v; want %+v", got, want)
	}
	if _, err := s.TakePending(ctx(t), "relay-1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("second TakePending() error = %v; want ErrNotFound", err)
	}
}

func testPendingMissing(t *testing.T, s session.Store) {
	if _, err := s.TakePending(ctx(t), "unknown"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("TakePending(unknown) error = %v; want ErrNotFound", err)
	}
	if err := s.SavePending(ctx(t), "", samplePending(), time.Minute); err == nil {
		t.Error("SavePending(empty key) = nil; want error")
	}
}

func testPendingExpires(t *testing.T, s session.Store) {
	if err := s.SavePending(ctx(t), "relay-exp", samplePending(), 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// TakePending consumes the entry, so it cannot be polled: wait past the
	// TTL (the store's own clock may be another process's) and check once.
	time.Sleep(400 * time.Millisecond)
	if _, err := s.TakePending(ctx(t), "relay-exp"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("TakePending(expired) error = %v; want ErrNotFound", err)
	}
}

func testPendingConcurrentTake(t *testing.T, s session.Store) {
	if err := s.SavePending(ctx(t), "relay-race", samplePending(), time.Minute); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.TakePending(context.Background(), "relay-race"); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("%d concurrent TakePending calls succeeded; want exactly 1", n)
	}
}

func testReplayCache(t *testing.T, s session.Store) {
	until := time.Now().Add(time.Hour)
	first, err := s.MarkAssertionUsed(ctx(t), "_assertion-1", until)
	if err != nil || !first {
		t.Fatalf("MarkAssertionUsed(new) = %v, %v; want true, nil", first, err)
	}
	first, err = s.MarkAssertionUsed(ctx(t), "_assertion-1", until)
	if err != nil || first {
		t.Errorf("MarkAssertionUsed(replay) = %v, %v; want false, nil", first, err)
	}
	first, err = s.MarkAssertionUsed(ctx(t), "_assertion-2", until)
	if err != nil || !first {
		t.Errorf("MarkAssertionUsed(other) = %v, %v; want true, nil", first, err)
	}
	if _, err := s.MarkAssertionUsed(ctx(t), "", until); err == nil {
		t.Error("MarkAssertionUsed(empty) = nil error; want error")
	}
}

func testReplayCacheConcurrent(t *testing.T, s session.Store) {
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, err := s.MarkAssertionUsed(context.Background(), "_race", time.Now().Add(time.Hour))
			if err == nil && first {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := firsts.Load(); n != 1 {
		t.Errorf("%d concurrent first uses of one assertion ID; want exactly 1", n)
	}
}

func testReplayCacheExpires(t *testing.T, s session.Store) {
	// An ID is remembered until its time; a past time is still remembered
	// for a while so the answer does not flip.
	if first, err := s.MarkAssertionUsed(ctx(t), "_past", time.Now().Add(-time.Minute)); err != nil || !first {
		t.Fatalf("MarkAssertionUsed(past) = %v, %v; want true, nil", first, err)
	}
	if first, _ := s.MarkAssertionUsed(ctx(t), "_past", time.Now().Add(-time.Minute)); first {
		t.Error("MarkAssertionUsed(past) replay accepted")
	}
	if _, err := s.MarkAssertionUsed(ctx(t), "_short", time.Now().Add(150*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "assertion id forgotten after its time", func() bool {
		first, err := s.MarkAssertionUsed(ctx(t), "_short", time.Now().Add(150*time.Millisecond))
		return err == nil && first
	})
}

func testCancelledContext(t *testing.T, s session.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	checks := map[string]error{
		"SaveSession": s.SaveSession(c, Sample("sid-ctx"), time.Hour),
	}
	_, checks["LoadSession"] = s.LoadSession(c, "sid-ctx")
	_, checks["TakePending"] = s.TakePending(c, "x")
	_, checks["MarkAssertionUsed"] = s.MarkAssertionUsed(c, "x", time.Now().Add(time.Hour))
	_, checks["DeleteUserSessions"] = s.DeleteUserSessions(c, "u-123")
	_, checks["Revocations"] = s.Revocations(c)
	_, checks["GetBlob"] = s.GetBlob(c, "x")
	checks["PutBlob"] = s.PutBlob(c, "x", []byte("v"))
	_, checks["CompareAndSwapBlob"] = s.CompareAndSwapBlob(c, "x", nil, []byte("v"))
	checks["PutCached"] = s.PutCached(c, "x", []byte("v"), time.Hour)
	_, checks["GetCached"] = s.GetCached(c, "x")
	for name, err := range checks {
		if err == nil || errors.Is(err, session.ErrNotFound) {
			t.Errorf("%s with a cancelled context = %v; want an error other than ErrNotFound", name, err)
		}
	}
	// Refused calls changed nothing.
	if _, err := s.GetCached(ctx(t), "x"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetCached() after a cancelled PutCached = %v; want ErrNotFound", err)
	}
}

func testPing(t *testing.T, s session.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("Ping() = %v", err)
	}
}

func testRenewOnlyExisting(t *testing.T, s session.Store) {
	a := Sample("sid-renew")
	if err := s.SaveSession(ctx(t), a, time.Minute); err != nil {
		t.Fatal(err)
	}
	a.LastSeen = a.LastSeen.Add(30 * time.Second)
	renewed, err := s.RenewSession(ctx(t), a, time.Hour)
	if err != nil || !renewed {
		t.Fatalf("RenewSession(existing) = %v, %v; want true, nil", renewed, err)
	}
	got, err := s.LoadSession(ctx(t), a.ID)
	if err != nil || !got.LastSeen.Equal(a.LastSeen) {
		t.Errorf("after renewal LoadSession() = %+v, %v; want LastSeen %v", got, err, a.LastSeen)
	}
	// The user index follows the renewal: revoke-all still finds it.
	ids, err := s.DeleteUserSessions(ctx(t), a.UserID)
	if err != nil || len(ids) != 1 || ids[0] != a.ID {
		t.Errorf("DeleteUserSessions() after renewal = %v, %v; want [%s]", ids, err, a.ID)
	}
	// Deleted (revoked) meanwhile: the renewal must not bring it back.
	renewed, err = s.RenewSession(ctx(t), a, time.Hour)
	if err != nil || renewed {
		t.Errorf("RenewSession(deleted) = %v, %v; want false, nil", renewed, err)
	}
	if _, err := s.LoadSession(ctx(t), a.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadSession() after renewing a deleted session = %v; want ErrNotFound", err)
	}
	if renewed, err := s.RenewSession(ctx(t), Sample("sid-never"), time.Hour); err != nil || renewed {
		t.Errorf("RenewSession(never saved) = %v, %v; want false, nil", renewed, err)
	}
	if _, err := s.RenewSession(ctx(t), Sample(""), time.Hour); err == nil {
		t.Error("RenewSession(empty ID) = nil error; want an error")
	}
}
