package storetest

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

func getBlob(t *testing.T, s session.Store, name string) []byte {
	t.Helper()
	b, err := s.GetBlob(ctx(t), name)
	if err != nil {
		t.Fatalf("GetBlob(%q) = %v", name, err)
	}
	return b
}

func testBlobRoundTrip(t *testing.T, s session.Store) {
	if _, err := s.GetBlob(ctx(t), "keys"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetBlob(missing) error = %v; want ErrNotFound", err)
	}
	data := []byte(`{"keys":[{"kid":"k1"}]}`)
	if err := s.PutBlob(ctx(t), "keys", data); err != nil {
		t.Fatalf("PutBlob() = %v", err)
	}
	data[0] = 'X' // the store keeps its own copy
	got := getBlob(t, s, "keys")
	if want := `{"keys":[{"kid":"k1"}]}`; string(got) != want {
		t.Errorf("GetBlob() = %q; want %q", got, want)
	}
	got[0] = 'Y' // and hands out copies
	if again := getBlob(t, s, "keys"); again[0] != '{' {
		t.Errorf("GetBlob() = %q; the store shares memory with the caller", again)
	}

	// Binary data, replacement, an empty value, and names that are not
	// confused with each other.
	bin := []byte{0, 1, 2, 0xff, '\n', 0}
	if err := s.PutBlob(ctx(t), "keys", bin); err != nil {
		t.Fatal(err)
	}
	if got := getBlob(t, s, "keys"); !bytes.Equal(got, bin) {
		t.Errorf("GetBlob() after replace = %q; want %q", got, bin)
	}
	if err := s.PutBlob(ctx(t), "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got := getBlob(t, s, "empty"); len(got) != 0 {
		t.Errorf("GetBlob(empty) = %q; want empty", got)
	}
	if _, err := s.GetBlob(ctx(t), "key"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetBlob(prefix of a name) error = %v; want ErrNotFound", err)
	}
}

func testBlobInvalidName(t *testing.T, s session.Store) {
	if _, err := s.GetBlob(ctx(t), ""); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf(`GetBlob("") error = %v; want a validation error`, err)
	}
	if err := s.PutBlob(ctx(t), "", []byte("x")); err == nil {
		t.Error(`PutBlob("") = nil; want error`)
	}
	if _, err := s.CompareAndSwapBlob(ctx(t), "", nil, []byte("x")); err == nil {
		t.Error(`CompareAndSwapBlob("") = nil error; want error`)
	}
}

func testBlobCompareAndSwap(t *testing.T, s session.Store) {
	steps := []struct {
		name     string
		old, new []byte
		swapped  bool
		want     string // value afterwards; "<none>" when absent
	}{
		{"create", nil, []byte("v1"), true, "v1"},
		{"create when present", nil, []byte("v2"), false, "v1"},
		{"wrong old", []byte("v0"), []byte("v2"), false, "v1"},
		{"old is a prefix", []byte("v"), []byte("v2"), false, "v1"},
		{"empty old is not absent", []byte{}, []byte("v2"), false, "v1"},
		{"swap", []byte("v1"), []byte("v2"), true, "v2"},
		{"stale old", []byte("v1"), []byte("v3"), false, "v2"},
		{"swap to empty", []byte("v2"), []byte{}, true, ""},
		{"nil old is not empty", nil, []byte("v4"), false, ""},
		{"swap from empty", []byte{}, []byte("v4"), true, "v4"},
	}
	for _, st := range steps {
		swapped, err := s.CompareAndSwapBlob(ctx(t), "cfg", st.old, st.new)
		if err != nil || swapped != st.swapped {
			t.Fatalf("%s: CompareAndSwapBlob(%q, %q) = %v, %v; want %v, nil", st.name, st.old, st.new, swapped, err, st.swapped)
		}
		if got := getBlob(t, s, "cfg"); string(got) != st.want {
			t.Fatalf("%s: GetBlob() = %q; want %q", st.name, got, st.want)
		}
	}
	// A non-nil old never creates.
	if swapped, err := s.CompareAndSwapBlob(ctx(t), "absent", []byte("v1"), []byte("v2")); err != nil || swapped {
		t.Errorf("CompareAndSwapBlob(absent, non-nil old) = %v, %v; want false, nil", swapped, err)
	}
	if _, err := s.GetBlob(ctx(t), "absent"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("GetBlob(absent) after a failed swap = %v; want ErrNotFound", err)
	}
}

func testBlobCompareAndSwapConcurrent(t *testing.T, s session.Store) {
	// Workers increment a counter with read-modify-CAS loops: with an atomic
	// swap no increment is lost.
	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	c := ctx(t)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				for {
					cur, err := s.GetBlob(c, "counter")
					if errors.Is(err, session.ErrNotFound) {
						cur, err = nil, nil
					}
					if err != nil {
						errs <- err
						return
					}
					n := 0
					if cur != nil {
						if n, err = strconv.Atoi(string(cur)); err != nil {
							errs <- err
							return
						}
					}
					swapped, err := s.CompareAndSwapBlob(c, "counter", cur, []byte(strconv.Itoa(n+1)))
					if err != nil {
						errs <- err
						return
					}
					if swapped {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
	if got, want := string(getBlob(t, s, "counter")), strconv.Itoa(workers*rounds); got != want {
		t.Errorf("counter = %s after %d increments; want %s", got, workers*rounds, want)
	}
}
