package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/caddymodule/session/storetest"
	"github.com/engage-sso/engage-sso/internal/redistest"
)

// TestMain silences go-redis's own logger, which reports every failed dial
// and Sentinel lookup on stderr; the tests report what matters.
func TestMain(m *testing.M) {
	redis.SetLogger(discardLogger{})
	os.Exit(m.Run())
}

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// prefixes makes every store in the test binary use its own keys, so that
// stores sharing a server can be tested in parallel.
var prefixes atomic.Int64

func nextPrefix() string {
	return fmt.Sprintf("test%d:", prefixes.Add(1))
}

// openRedis returns a storetest.Open that makes a store with a new client
// from opts and its own key prefix.
func openRedis(opts *redis.UniversalOptions) storetest.Open {
	return func(t *testing.T) session.Store {
		return newRedis(t, opts, nextPrefix())
	}
}

func newRedis(t testing.TB, opts *redis.UniversalOptions, prefix string) *session.Redis {
	t.Helper()
	o := *opts
	return newRedisWith(t, redis.NewUniversalClient(&o), prefix)
}

func newRedisWith(t testing.TB, c redis.UniversalClient, prefix string) *session.Redis {
	t.Helper()
	s, err := session.NewRedis(session.RedisOptions{Client: c, Prefix: prefix})
	if err != nil {
		t.Fatalf("NewRedis() = %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRedisStandaloneConformance(t *testing.T) {
	t.Parallel()
	addr := redistest.Standalone(t)
	storetest.Run(t, openRedis(&redis.UniversalOptions{Addrs: []string{addr}}))
}

func TestRedisSentinelConformance(t *testing.T) {
	t.Parallel()
	master, sentinels := redistest.Sentinel(t)
	storetest.Run(t, openRedis(&redis.UniversalOptions{MasterName: master, Addrs: sentinels}))
}

func TestRedisClusterConformance(t *testing.T) {
	t.Parallel()
	addrs := redistest.Cluster(t)
	storetest.Run(t, openRedis(&redis.UniversalOptions{Addrs: addrs}))
}

// raw returns a plain client for inspecting a server's keys.
func raw(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestNewRedis(t *testing.T) {
	t.Parallel()
	if _, err := session.NewRedis(session.RedisOptions{}); err == nil {
		t.Error("NewRedis(no client) = nil error; want error")
	}
	// The default prefix.
	addr := redistest.Standalone(t)
	s := newRedis(t, &redis.UniversalOptions{Addrs: []string{addr}}, "")
	ctx := context.Background()
	if err := s.SaveSession(ctx, storetest.Sample("sid-default"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := raw(t, addr).Exists(ctx, "engage_sso:s:sid-default").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS engage_sso:s:sid-default = %d, %v; want 1 (default prefix)", n, err)
	}
}

func TestRedisKeyLayoutAndTTLs(t *testing.T) {
	t.Parallel()
	addr := redistest.Standalone(t)
	s := newRedis(t, &redis.UniversalOptions{Addrs: []string{addr}}, "kl:")
	ctx := context.Background()
	if err := s.SaveSession(ctx, storetest.Sample("sid-ttl"), 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "relay-ttl", &session.PendingLogin{RequestID: "r"}, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkAssertionUsed(ctx, "_a-ttl", time.Now().Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkAssertionUsed(ctx, "_a-past", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(ctx, "jwks", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCached(ctx, "groups:u-123", []byte(`["g1"]`), 8*time.Hour); err != nil {
		t.Fatal(err)
	}
	c := raw(t, addr)
	tests := []struct {
		key      string
		min, max time.Duration // PTTL bounds; -1 for no expiry
	}{
		{"kl:s:sid-ttl", 29 * time.Minute, 30 * time.Minute},
		{"kl:u:u-123", 30 * time.Minute, 31 * time.Minute}, // session TTL + grace
		{"kl:p:relay-ttl", 4 * time.Minute, 5 * time.Minute},
		{"kl:a:_a-ttl", 9 * time.Minute, 10 * time.Minute},
		{"kl:a:_a-past", 50 * time.Second, time.Minute},
		{"kl:b:jwks", -1, -1},
		{"kl:c:groups:u-123", 8*time.Hour - time.Minute, 8 * time.Hour},
	}
	for _, tt := range tests {
		got, err := c.PTTL(ctx, tt.key).Result()
		if err != nil {
			t.Errorf("PTTL %s = %v", tt.key, err)
			continue
		}
		if tt.min == -1 {
			if got != -1 {
				t.Errorf("PTTL %s = %v; want no expiry", tt.key, got)
			}
			continue
		}
		if got < tt.min || got > tt.max {
			t.Errorf("PTTL %s = %v; want between %v and %v", tt.key, got, tt.min, tt.max)
		}
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != int64(len(tests)) {
		t.Errorf("DBSIZE = %d, %v; want %d (no other keys)", n, err, len(tests))
	}
}

func TestRedisUserIndexPrunes(t *testing.T) {
	t.Parallel()
	addr := redistest.Standalone(t)
	s := newRedis(t, &redis.UniversalOptions{Addrs: []string{addr}}, "ix:")
	session.SetIndexGrace(s, 0)
	ctx := context.Background()
	c := raw(t, addr)
	for i := range 5 {
		sess := storetest.Sample(fmt.Sprintf("sid-short-%d", i))
		if err := s.SaveSession(ctx, sess, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := c.ZCard(ctx, "ix:u:u-123").Result(); n != 5 {
		t.Fatalf("ZCARD index = %d; want 5", n)
	}
	time.Sleep(150 * time.Millisecond)
	if err := s.SaveSession(ctx, storetest.Sample("sid-long"), time.Hour); err != nil {
		t.Fatal(err)
	}
	members, err := c.ZRange(ctx, "ix:u:u-123", 0, -1).Result()
	if err != nil || len(members) != 1 || members[0] != "sid-long" {
		t.Errorf("index after a write = %q, %v; want only sid-long (expired members pruned)", members, err)
	}
	if d, _ := c.PTTL(ctx, "ix:u:u-123").Result(); d < 59*time.Minute || d > time.Hour {
		t.Errorf("PTTL index = %v; want about 1h (its latest member)", d)
	}
	// The index key goes away with its last session.
	if err := s.DeleteSession(ctx, "sid-long"); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, "ix:u:u-123").Result(); n != 0 {
		t.Errorf("EXISTS index after its last session was deleted = %d; want 0", n)
	}
	// An index whose sessions all expire expires too.
	if err := s.SaveSession(ctx, storetest.Sample("sid-brief"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if n, _ := c.Exists(ctx, "ix:u:u-123").Result(); n != 0 {
		t.Errorf("EXISTS index after its sessions expired = %d; want 0", n)
	}
}

func TestRedisRecordSize(t *testing.T) {
	t.Parallel()
	addr := redistest.Standalone(t)
	s := newRedis(t, &redis.UniversalOptions{Addrs: []string{addr}}, "sz:")
	ctx := context.Background()
	// A typical session: real-looking names, IDs and SAML values.
	id := session.IDFromToken("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	sess := storetest.Sample(id)
	sess.UserID = "8d0f5c2e-4b1a-4e7b-9c3d-2f6a1b8e9d70"
	sess.SessionIndex = "_be9967abd904ddcae3c0eb4189adbe3f71e327cf93"
	if err := s.SaveSession(ctx, sess, 8*time.Hour); err != nil {
		t.Fatal(err)
	}
	c := raw(t, addr)
	n, err := c.StrLen(ctx, "sz:s:"+id).Result()
	if err != nil {
		t.Fatal(err)
	}
	usage, err := c.MemoryUsage(ctx, "sz:s:"+id).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("session record: %d bytes of JSON, MEMORY USAGE %d bytes", n, usage)
	if n >= 1024 || usage >= 1024 {
		t.Errorf("session record = %d bytes (MEMORY USAGE %d); want < 1 KB", n, usage)
	}
}

func TestRedisCorruptRecord(t *testing.T) {
	t.Parallel()
	addr := redistest.Standalone(t)
	s := newRedis(t, &redis.UniversalOptions{Addrs: []string{addr}}, "cr:")
	ctx := context.Background()
	c := raw(t, addr)
	other, err := json.Marshal(storetest.Sample("sid-other"))
	if err != nil {
		t.Fatal(err)
	}
	for key, val := range map[string]string{
		"cr:s:sid-garbage":  "not json",
		"cr:s:sid-mismatch": string(other),
	} {
		if err := c.Set(ctx, key, val, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"sid-garbage", "sid-mismatch"} {
		if _, err := s.LoadSession(ctx, id); err == nil || errors.Is(err, session.ErrNotFound) {
			t.Errorf("LoadSession(%q) error = %v; want a decoding error", id, err)
		}
	}
	if err := s.DeleteSession(ctx, "sid-garbage"); err != nil {
		t.Errorf("DeleteSession(corrupt) = %v; want nil", err)
	}
	if err := c.Set(ctx, "cr:p:relay-garbage", "{", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakePending(ctx, "relay-garbage"); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("TakePending(corrupt) error = %v; want a decoding error", err)
	}
}

func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	s := newRedisWith(t, redis.NewClient(&redis.Options{
		Addr:          srv.Addr(),
		DialTimeout:   200 * time.Millisecond,
		ReadTimeout:   200 * time.Millisecond,
		WriteTimeout:  200 * time.Millisecond,
		PoolTimeout:   200 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
	}), "out:")
	ctx := context.Background()
	const secretID = "sid-outage-secret"
	if err := s.SaveSession(ctx, storetest.Sample(secretID), time.Hour); err != nil {
		t.Fatal(err)
	}
	revoked, err := s.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	calls := map[string]func() error{
		"Ping":        func() error { return s.Ping(ctx) },
		"SaveSession": func() error { return s.SaveSession(ctx, storetest.Sample(secretID), time.Hour) },
		"LoadSession": func() error { _, err := s.LoadSession(ctx, secretID); return err },
		"DeleteSession": func() error {
			return s.DeleteSession(ctx, secretID)
		},
		"DeleteUserSessions": func() error { _, err := s.DeleteUserSessions(ctx, "u-123"); return err },
		"Revocations":        func() error { _, err := s.Revocations(ctx); return err },
		"SavePending": func() error {
			return s.SavePending(ctx, "relay", &session.PendingLogin{RequestID: "r"}, time.Minute)
		},
		"TakePending": func() error { _, err := s.TakePending(ctx, "relay"); return err },
		"MarkAssertionUsed": func() error {
			first, err := s.MarkAssertionUsed(ctx, "_a", time.Now().Add(time.Hour))
			if first {
				return errors.New("first = true while Redis is down")
			}
			return err
		},
		"GetBlob": func() error { _, err := s.GetBlob(ctx, "b"); return err },
		"PutCached": func() error {
			return s.PutCached(ctx, "c", []byte("x"), time.Minute)
		},
		"GetCached": func() error { _, err := s.GetCached(ctx, "c"); return err },
		"PutBlob":   func() error { return s.PutBlob(ctx, "b", []byte("x")) },
		"CompareAndSwapBlob": func() error {
			_, err := s.CompareAndSwapBlob(ctx, "b", nil, []byte("x"))
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		took := time.Since(start)
		switch {
		case err == nil:
			t.Errorf("%s with Redis down = nil; want an error", name)
		case errors.Is(err, session.ErrNotFound):
			t.Errorf("%s with Redis down = %v; want an error other than ErrNotFound", name, err)
		case strings.Contains(err.Error(), secretID):
			t.Errorf("%s error %q contains the session ID", name, err)
		}
		if took > 2*time.Second {
			t.Errorf("%s with Redis down took %v; want a quick failure", name, took)
		}
	}

	srv.Start()
	ok := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s.Ping(ctx) == nil {
			ok = true
			break
		}
	}
	if !ok {
		t.Fatal("Ping() still failing 5s after Redis came back")
	}
	if err := s.SaveSession(ctx, storetest.Sample("sid-back"), time.Hour); err != nil {
		t.Fatalf("SaveSession() after restart = %v", err)
	}
	if _, err := s.LoadSession(ctx, "sid-back"); err != nil {
		t.Fatalf("LoadSession() after restart = %v", err)
	}
	// The subscription made before the outage delivers again.
	got := ""
	for deadline := time.Now().Add(10 * time.Second); got == "" && time.Now().Before(deadline); {
		if err := s.DeleteSession(ctx, "sid-probe"); err != nil {
			t.Fatalf("DeleteSession() after restart = %v", err)
		}
		select {
		case id, open := <-revoked:
			if !open {
				t.Fatal("Revocations channel closed by the outage")
			}
			got = id
		case <-time.After(200 * time.Millisecond):
		}
	}
	if got != "sid-probe" {
		t.Errorf("Revocations after restart delivered %q; want sid-probe within 10s", got)
	}
}

func BenchmarkLoadSession(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, s session.Store) {
		if err := s.SaveSession(ctx, storetest.Sample("sid-bench"), time.Hour); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.LoadSession(ctx, "sid-bench"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) {
		m := session.NewMemory(session.MemoryOptions{})
		defer m.Close()
		run(b, m)
	})
	b.Run("redis", func(b *testing.B) {
		addr := redistest.Standalone(b)
		run(b, newRedis(b, &redis.UniversalOptions{Addrs: []string{addr}}, "bench:"))
	})
}
