package demoapp

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// The store is described in the package doc: one JSON file, rewritten
// atomically on every change.

// storeVersion is the format version of the data file.
const storeVersion = 1

// idempotencyTTL is how long an Idempotency-Key is remembered.
const idempotencyTTL = 24 * time.Hour

// user is a user account in the wire format of the user hook.
type user struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	GivenName   string `json:"given_name"`
	FamilyName  string `json:"family_name"`
	DisplayName string `json:"display_name"`
	Role        string `json:"role"`
	Active      bool   `json:"active"`
	Company     string `json:"company"`
	ExternalID  string `json:"external_id"`
	Provider    string `json:"provider"`
}

// record is a stored user.
type record struct {
	user
	// CreatedBy is the subject of the hook token that created the user
	// (engage-sso's JIT login, say), or "" for a user added by hand.
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// idempotencyKey remembers the user a create with that key made.
type idempotencyKey struct {
	Key       string    `json:"key"`
	UserID    string    `json:"user_id"`
	Digest    string    `json:"digest"` // of the create request, to spot a reused key
	CreatedAt time.Time `json:"created_at"`
}

// fileFormat is the content of the data file.
type fileFormat struct {
	Version         int              `json:"version"`
	Users           []record         `json:"users"`
	IdempotencyKeys []idempotencyKey `json:"idempotency_keys"`
}

// state is the store's content. Changes are made to a copy, which replaces
// the state only once it is saved.
type state struct {
	users map[string]record
	keys  map[string]idempotencyKey
}

func (s *state) clone() *state {
	return &state{users: maps.Clone(s.users), keys: maps.Clone(s.keys)}
}

// store is the demo's user database. It is safe for concurrent use.
type store struct {
	path string // "" keeps the users in memory only
	now  func() time.Time
	rand io.Reader

	mu sync.Mutex
	st *state
}

// openStore loads the users from path, if the file exists. An empty path
// gives a store in memory.
func openStore(path string, now func() time.Time, random io.Reader) (*store, error) {
	s := &store{path: path, now: now, rand: random, st: &state{users: map[string]record{}, keys: map[string]idempotencyKey{}}}
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("demoapp: reading users: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("demoapp: parsing users file %s: %w", path, err)
	}
	if f.Version != storeVersion {
		return nil, fmt.Errorf("demoapp: users file %s has version %d; want %d", path, f.Version, storeVersion)
	}
	for _, r := range f.Users {
		if r.ID == "" {
			return nil, fmt.Errorf("demoapp: users file %s: user without id", path)
		}
		if _, dup := s.st.users[r.ID]; dup {
			return nil, fmt.Errorf("demoapp: users file %s: user id %q repeated", path, r.ID)
		}
		s.st.users[r.ID] = r
	}
	for _, k := range f.IdempotencyKeys {
		s.st.keys[k.Key] = k
	}
	return s, nil
}

// read calls f with the current state, which f must not change.
func (s *store) read(f func(*state)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.st)
}

// update applies change to a copy of the state, saves it and makes it
// current. If change or saving fails, nothing changes; if change returns
// errNoChange, update returns nil without saving.
func (s *store) update(change func(*state) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.st.clone()
	if err := change(next); err != nil {
		if errors.Is(err, errNoChange) {
			return nil
		}
		return err
	}
	cutoff := s.now().Add(-idempotencyTTL)
	maps.DeleteFunc(next.keys, func(_ string, k idempotencyKey) bool { return k.CreatedAt.Before(cutoff) })
	if err := s.save(next); err != nil {
		return err
	}
	s.st = next
	return nil
}

// save writes st to the data file atomically.
func (s *store) save(st *state) error {
	if s.path == "" {
		return nil
	}
	f := fileFormat{
		Version:         storeVersion,
		Users:           slices.SortedFunc(maps.Values(st.users), func(a, b record) int { return cmp.Compare(a.ID, b.ID) }),
		IdempotencyKeys: slices.SortedFunc(maps.Values(st.keys), func(a, b idempotencyKey) int { return cmp.Compare(a.Key, b.Key) }),
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("demoapp: encoding users: %w", err)
	}
	if err := writeFileAtomic(s.path, append(data, '\n')); err != nil {
		return fmt.Errorf("demoapp: saving users: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: temporary file, fsync, rename,
// fsync of the directory. The file is readable by its owner only.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// newID returns a new random user id.
func (s *store) newID() (string, error) {
	var b [10]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("demoapp: generating user id: %w", err)
	}
	return "u-" + hex.EncodeToString(b[:]), nil
}

// findBy returns the user of company for whom match holds.
func (st *state) findBy(company string, match func(*record) bool) (record, bool) {
	for _, r := range st.users {
		if r.Company == company && match(&r) {
			return r, true
		}
	}
	return record{}, false
}

// conflict returns the error of u clashing with another user of its
// company, ignoring the user with id self, or nil.
func (st *state) conflict(u *user, self string) error {
	if _, ok := st.findBy(u.Company, func(r *record) bool { return r.ID != self && strings.EqualFold(r.Email, u.Email) }); ok {
		return &hookError{409, codeDuplicateEmail, "another user of the company has this email"}
	}
	if u.ExternalID == "" {
		return nil
	}
	if _, ok := st.findBy(u.Company, func(r *record) bool { return r.ID != self && r.ExternalID == u.ExternalID }); ok {
		return &hookError{409, codeDuplicateExternalID, "another user of the company has this external_id"}
	}
	return nil
}

// companyUsers returns the users of company ordered by id.
func (st *state) companyUsers(company string) []record {
	var out []record
	for _, r := range st.users {
		if r.Company == company {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b record) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
