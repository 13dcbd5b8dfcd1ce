package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

func getCached(t *testing.T, s session.Store, key string) []byte {
	t.Helper()
	b, err := s.GetCached(ctx(t), key)
	if err != nil {
		t.Fatalf("GetCached(%q) = %v", key, err)
	}
	return b
}

func putCached(t *testing.T, s session.Store, key string, data []byte, ttl time.Duration) {
	t.Helper()
	if err := s.PutCached(ctx(t), key, data, ttl); err != nil {
		t.Fatalf("PutCached(%q, %q, %v) = %v", key, data, ttl, err)
	}
}

func cachedMissing(t *testing.T, s session.Store, key string) bool {
	t.Helper()
	_, err := s.GetCached(ctx(t), key)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("GetCached(%q) = %v; want a value or ErrNotFound", key, err)
	}
	return err != nil
}

func testCacheRoundTrip(t *testing.T, s session.Store) {
	tests := []struct {
		name string
		key  string
		data []byte
	}{
		{"json", "groups:u-1", []byte(`["g1","g2"]`)},
		{"binary", "bin", []byte{0, 1, 2, 0xff, '\n', 0}},
		{"empty", "empty", []byte{}},
		{"nil", "nil", nil},
		{"odd key", "tenant/4f7c:oid é", []byte("v")},
	}
	for _, tt := range tests {
		if !cachedMissing(t, s, tt.key) {
			t.Errorf("%s: GetCached(%q) before any put found a value; want ErrNotFound", tt.name, tt.key)
		}
		putCached(t, s, tt.key, tt.data, time.Hour)
		if got := getCached(t, s, tt.key); !bytes.Equal(got, tt.data) {
			t.Errorf("%s: GetCached(%q) = %q; want %q", tt.name, tt.key, got, tt.data)
		}
	}
	// Keys that are prefixes of each other are distinct, and the cache does
	// not share names with blobs.
	if !cachedMissing(t, s, "groups:u") {
		t.Error(`GetCached("groups:u") found a value; only "groups:u-1" was put`)
	}
	if err := s.PutBlob(ctx(t), "blob-only", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if !cachedMissing(t, s, "blob-only") {
		t.Error(`GetCached("blob-only") found a blob; cached values and blobs must not share names`)
	}
	if _, err := s.GetBlob(ctx(t), "groups:u-1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf(`GetBlob("groups:u-1") = %v; want ErrNotFound (a cached value is not a blob)`, err)
	}
}

func testCacheReplace(t *testing.T, s session.Store) {
	steps := []struct {
		data []byte
		want string
	}{
		{[]byte("v1"), "v1"},
		{[]byte("second, longer value"), "second, longer value"},
		{[]byte("v3"), "v3"},
		{[]byte{}, ""},
	}
	for i, st := range steps {
		putCached(t, s, "k", st.data, time.Hour)
		if got := getCached(t, s, "k"); string(got) != st.want {
			t.Fatalf("step %d: GetCached() = %q; want %q", i, got, st.want)
		}
	}
}

func testCacheExpires(t *testing.T, s session.Store) {
	// short expires; long does not; renewed was put with a short TTL and
	// then replaced with a long one, which must take the new TTL.
	putCached(t, s, "short", []byte("s"), 150*time.Millisecond)
	putCached(t, s, "long", []byte("l"), time.Hour)
	putCached(t, s, "renewed", []byte("r1"), 150*time.Millisecond)
	putCached(t, s, "renewed", []byte("r2"), time.Hour)
	if got := getCached(t, s, "short"); string(got) != "s" {
		t.Fatalf("GetCached(short) right after put = %q; want %q", got, "s")
	}
	eventually(t, "cached value expired", func() bool { return cachedMissing(t, s, "short") })
	if got := getCached(t, s, "long"); string(got) != "l" {
		t.Errorf("GetCached(long) = %q; want %q", got, "l")
	}
	if got := getCached(t, s, "renewed"); string(got) != "r2" {
		t.Errorf("GetCached(renewed) = %q; want %q (replacing must also replace the TTL)", got, "r2")
	}
	// An expired key can be filled again.
	putCached(t, s, "short", []byte("s2"), time.Hour)
	if got := getCached(t, s, "short"); string(got) != "s2" {
		t.Errorf("GetCached(short) after refill = %q; want %q", got, "s2")
	}
}

func testCacheCopyIsolated(t *testing.T, s session.Store) {
	data := []byte("group-ids")
	putCached(t, s, "iso", data, time.Hour)
	data[0] = 'X' // the store keeps its own copy
	got := getCached(t, s, "iso")
	if string(got) != "group-ids" {
		t.Fatalf("GetCached() = %q after the caller changed its input; want %q", got, "group-ids")
	}
	got[0] = 'Y' // and hands out copies
	if again := getCached(t, s, "iso"); string(again) != "group-ids" {
		t.Errorf("GetCached() = %q after the caller changed a returned slice; want %q", again, "group-ids")
	}
}

func testCacheInvalid(t *testing.T, s session.Store) {
	puts := []struct {
		name string
		key  string
		ttl  time.Duration
	}{
		{"empty key", "", time.Hour},
		{"zero ttl", "k-zero", 0},
		{"negative ttl", "k-neg", -time.Second},
	}
	for _, p := range puts {
		if err := s.PutCached(ctx(t), p.key, []byte("v"), p.ttl); err == nil || errors.Is(err, session.ErrNotFound) {
			t.Errorf("%s: PutCached(%q, ttl %v) = %v; want a validation error", p.name, p.key, p.ttl, err)
		}
		if p.key != "" && !cachedMissing(t, s, p.key) {
			t.Errorf("%s: a refused PutCached(%q) stored a value", p.name, p.key)
		}
	}
	if _, err := s.GetCached(ctx(t), ""); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf(`GetCached("") = %v; want a validation error`, err)
	}
	// A non-positive TTL does not delete an existing value either: it is
	// refused outright.
	putCached(t, s, "kept", []byte("v"), time.Hour)
	if err := s.PutCached(ctx(t), "kept", []byte("w"), 0); err == nil {
		t.Error("PutCached(existing, ttl 0) = nil; want an error")
	}
	if got := getCached(t, s, "kept"); string(got) != "v" {
		t.Errorf("GetCached(kept) after a refused put = %q; want %q", got, "v")
	}
}
