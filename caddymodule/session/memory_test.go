package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/caddymodule/session/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) session.Store {
		return session.NewMemory(session.MemoryOptions{SweepInterval: 50 * time.Millisecond})
	})
}

func TestMemoryBounded(t *testing.T) {
	m := session.NewMemory(session.MemoryOptions{MaxEntries: 2})
	defer m.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := m.SaveSession(ctx, storetest.Sample(id), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SaveSession(ctx, storetest.Sample("c"), time.Hour); !errors.Is(err, session.ErrFull) {
		t.Errorf("SaveSession over the bound = %v; want ErrFull", err)
	}
	// Replacing an existing entry is always allowed.
	if err := m.SaveSession(ctx, storetest.Sample("a"), time.Hour); err != nil {
		t.Errorf("SaveSession(existing) at the bound = %v", err)
	}
	p := &session.PendingLogin{RequestID: "r"}
	for _, k := range []string{"k1", "k2"} {
		if err := m.SavePending(ctx, k, p, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SavePending(ctx, "k3", p, time.Hour); !errors.Is(err, session.ErrFull) {
		t.Errorf("SavePending over the bound = %v; want ErrFull", err)
	}
	// Cached values have their own bound.
	for _, k := range []string{"c1", "c2"} {
		if err := m.PutCached(ctx, k, []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.PutCached(ctx, "c3", []byte("v"), time.Hour); !errors.Is(err, session.ErrFull) {
		t.Errorf("PutCached over the bound = %v; want ErrFull", err)
	}
	if err := m.PutCached(ctx, "c1", []byte("w"), time.Hour); err != nil {
		t.Errorf("PutCached(existing) at the bound = %v", err)
	}
}

func TestMemorySweepFreesExpired(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := session.NewMemory(session.MemoryOptions{MaxEntries: 1, Now: func() time.Time { return now }})
	defer m.Close()
	ctx := context.Background()
	if err := m.SaveSession(ctx, storetest.Sample("old"), time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	// The bound counts live entries only: the expired one is swept on demand.
	if err := m.SaveSession(ctx, storetest.Sample("new"), time.Minute); err != nil {
		t.Errorf("SaveSession after expiry at the bound = %v; want nil", err)
	}
	if s, p, u := m.Len(); s != 1 || p != 0 || u != 0 {
		t.Errorf("Len() = %d, %d, %d; want 1, 0, 0", s, p, u)
	}
	if err := m.PutCached(ctx, "old", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if err := m.PutCached(ctx, "new", []byte("v"), time.Minute); err != nil {
		t.Errorf("PutCached after expiry at the bound = %v; want nil", err)
	}
	if _, err := m.GetCached(ctx, "old"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetCached(expired) = %v; want ErrNotFound", err)
	}
}

// A cached value is gone at its expiry even before a sweep removes it.
func TestMemoryCachedExpiresBeforeSweep(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := session.NewMemory(session.MemoryOptions{SweepInterval: time.Hour, Now: func() time.Time { return now }})
	defer m.Close()
	ctx := context.Background()
	if err := m.PutCached(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at   time.Duration
		want error
	}{
		{59 * time.Second, nil},
		{time.Minute, session.ErrNotFound},
	} {
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(tt.at)
		if _, err := m.GetCached(ctx, "k"); !errors.Is(err, tt.want) {
			t.Errorf("GetCached() %v after a 1m put = %v; want %v", tt.at, err, tt.want)
		}
	}
}

func TestMemoryClosed(t *testing.T) {
	m := session.NewMemory(session.MemoryOptions{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	if err := m.Ping(context.Background()); err == nil {
		t.Error("Ping() after Close = nil; want error")
	}
	if err := m.PutCached(context.Background(), "k", []byte("v"), time.Hour); err == nil {
		t.Error("PutCached() after Close = nil; want error")
	}
	if _, err := m.GetCached(context.Background(), "k"); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetCached() after Close = %v; want an error other than ErrNotFound", err)
	}
}

func TestNewToken(t *testing.T) {
	tok, id, err := session.NewToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !session.ValidToken(tok) {
		t.Errorf("ValidToken(%q) = false", tok)
	}
	if id != session.IDFromToken(tok) || id == tok || len(id) != 32 {
		t.Errorf("IDFromToken(%q) = %q; id from NewToken %q", tok, session.IDFromToken(tok), id)
	}
	tok2, _, _ := session.NewToken(nil)
	if tok == tok2 {
		t.Error("two NewToken calls returned the same token")
	}
	// Deterministic with a fixed reader; an empty reader is an error.
	a, _, _ := session.NewToken(bytes.NewReader(make([]byte, 32)))
	if a != "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" {
		t.Errorf("NewToken(zeros) = %q", a)
	}
	if _, _, err := session.NewToken(bytes.NewReader(nil)); err == nil {
		t.Error("NewToken(empty reader) = nil error")
	}
}

func TestValidToken(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", true},
		{"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234", true},
		{"AAAA", false},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", false},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", false},
		{"", false},
	} {
		if got := session.ValidToken(tt.in); got != tt.want {
			t.Errorf("ValidToken(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestSessionExpiredAndTTL(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	s := &session.Session{CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(8 * time.Hour)}
	idle := time.Hour
	tests := []struct {
		name    string
		now     time.Time
		lastAt  time.Time
		expired bool
		ttl     time.Duration
	}{
		{"fresh", t0, t0, false, time.Hour},
		{"idle almost", t0.Add(59 * time.Minute), t0, false, time.Minute},
		{"idle over", t0.Add(time.Hour), t0, true, 0},
		{"renewed", t0.Add(90 * time.Minute), t0.Add(80 * time.Minute), false, 50 * time.Minute},
		{"absolute caps idle", t0.Add(7*time.Hour + 30*time.Minute), t0.Add(7*time.Hour + 30*time.Minute), false, 30 * time.Minute},
		{"absolute over", t0.Add(8 * time.Hour), t0.Add(8 * time.Hour), true, 0},
	}
	for _, tt := range tests {
		s.LastSeen = tt.lastAt
		if got := s.Expired(tt.now, idle); got != tt.expired {
			t.Errorf("%s: Expired() = %v; want %v", tt.name, got, tt.expired)
		}
		if got := s.TTL(tt.now, idle); got != tt.ttl {
			t.Errorf("%s: TTL() = %v; want %v", tt.name, got, tt.ttl)
		}
	}
	s.LastSeen = t0
	if s.Expired(t0.Add(5*time.Hour), 0) {
		t.Error("Expired() with idle 0 used an idle timeout")
	}
}

func TestMemoryRevocationsNeverBlock(t *testing.T) {
	m := session.NewMemory(session.MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	ch, err := m.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads ch: deletions go on, and the receiver keeps what fits.
	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := m.DeleteSession(ctx, fmt.Sprint("sid-", i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("DeleteSession blocked on a receiver that does not read")
	}
	if got := len(ch); got == 0 || got >= n {
		t.Errorf("receiver holds %d IDs after %d deletions; want some, not all", got, n)
	}
	if first := <-ch; first != "sid-0" {
		t.Errorf("first ID received = %q; want sid-0", first)
	}
}

func TestMemoryIndexFollowsUserChange(t *testing.T) {
	m := session.NewMemory(session.MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	s := storetest.Sample("sid-moved")
	s.UserID = "u-old"
	if err := m.SaveSession(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	s.UserID = "u-new"
	if err := m.SaveSession(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ids, err := m.DeleteUserSessions(ctx, "u-old"); err != nil || len(ids) != 0 {
		t.Errorf("DeleteUserSessions(u-old) = %q, %v; want none", ids, err)
	}
	if ids, err := m.DeleteUserSessions(ctx, "u-new"); err != nil || len(ids) != 1 || ids[0] != "sid-moved" {
		t.Errorf("DeleteUserSessions(u-new) = %q, %v; want [sid-moved]", ids, err)
	}
}
