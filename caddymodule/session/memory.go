package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// MemoryOptions configures a memory store. Zero values take the defaults.
type MemoryOptions struct {
	// MaxEntries bounds each of the store's maps (sessions, pending logins,
	// replay cache, cached values), so that a flood of login starts cannot
	// exhaust memory. Default 1,000,000.
	MaxEntries int
	// SweepInterval is how often expired entries are removed. Default 1m.
	SweepInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Memory is a Store kept in process memory: the zero-configuration store for
// a single instance. Its state is lost when the process exits.
type Memory struct {
	now func() time.Time
	max int

	mu       sync.Mutex
	sessions map[string]memEntry[Session]
	byUser   map[string]map[string]struct{} // user ID -> session IDs
	pending  map[string]memEntry[PendingLogin]
	used     map[string]time.Time
	blobs    map[string][]byte
	cached   map[string]memEntry[[]byte]
	subs     map[chan string]struct{} // Revocations receivers
	closed   bool

	stop chan struct{}
	done chan struct{}
}

type memEntry[T any] struct {
	v       T
	expires time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns a memory store and starts its sweeper; Close stops it.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1_000_000
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Memory{
		now:      o.Now,
		max:      o.MaxEntries,
		sessions: make(map[string]memEntry[Session]),
		byUser:   make(map[string]map[string]struct{}),
		pending:  make(map[string]memEntry[PendingLogin]),
		used:     make(map[string]time.Time),
		blobs:    make(map[string][]byte),
		cached:   make(map[string]memEntry[[]byte]),
		subs:     make(map[chan string]struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go m.sweepLoop(o.SweepInterval)
	return m
}

var errClosed = errors.New("session: memory store is closed")

func (m *Memory) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.closed {
		return errClosed
	}
	return nil
}

// SaveSession implements Store.
func (m *Memory) SaveSession(ctx context.Context, s *Session, ttl time.Duration) error {
	if s == nil || s.ID == "" {
		return errors.New("session: save: session has no ID")
	}
	if ttl <= 0 {
		return m.DeleteSession(ctx, s.ID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	if _, exists := m.sessions[s.ID]; !exists && len(m.sessions) >= m.max {
		m.sweepLocked(m.now())
		if len(m.sessions) >= m.max {
			return fmt.Errorf("session: save: %w (%d sessions)", ErrFull, len(m.sessions))
		}
	}
	if old, exists := m.sessions[s.ID]; exists && old.v.UserID != s.UserID {
		m.unindexLocked(old.v.UserID, s.ID)
	}
	m.sessions[s.ID] = memEntry[Session]{v: *s, expires: m.now().Add(ttl)}
	if s.UserID != "" {
		ids := m.byUser[s.UserID]
		if ids == nil {
			ids = make(map[string]struct{})
			m.byUser[s.UserID] = ids
		}
		ids[s.ID] = struct{}{}
	}
	return nil
}

// RenewSession implements Store.
func (m *Memory) RenewSession(ctx context.Context, s *Session, ttl time.Duration) (bool, error) {
	if s == nil || s.ID == "" {
		return false, errors.New("session: renew: session has no ID")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	cur, ok := m.sessions[s.ID]
	// A renewal keeps the user; a different one would need re-indexing,
	// which is SaveSession's job.
	if !ok || !m.now().Before(cur.expires) || ttl <= 0 || cur.v.UserID != s.UserID {
		return false, nil
	}
	m.sessions[s.ID] = memEntry[Session]{v: *s, expires: m.now().Add(ttl)}
	return true, nil
}

// LoadSession implements Store.
func (m *Memory) LoadSession(ctx context.Context, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	e, ok := m.sessions[id]
	if !ok || !m.now().Before(e.expires) {
		return nil, ErrNotFound
	}
	s := e.v
	return &s, nil
}

// DeleteSession implements Store.
func (m *Memory) DeleteSession(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	m.deleteSessionLocked(id)
	m.announceLocked(id)
	return nil
}

// DeleteUserSessions implements Store.
func (m *Memory) DeleteUserSessions(ctx context.Context, userID string) ([]string, error) {
	if userID == "" {
		return nil, errors.New("session: delete user sessions: empty user ID")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	now := m.now()
	var ids []string
	for id := range m.byUser[userID] {
		if e, ok := m.sessions[id]; ok && now.Before(e.expires) {
			ids = append(ids, id)
		}
		delete(m.sessions, id)
	}
	delete(m.byUser, userID)
	for _, id := range ids {
		m.announceLocked(id)
	}
	return ids, nil
}

// deleteSessionLocked removes a session and its index entry.
func (m *Memory) deleteSessionLocked(id string) {
	if e, ok := m.sessions[id]; ok {
		m.unindexLocked(e.v.UserID, id)
		delete(m.sessions, id)
	}
}

func (m *Memory) unindexLocked(userID, id string) {
	if userID == "" {
		return
	}
	if ids := m.byUser[userID]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.byUser, userID)
		}
	}
}

// revocationBuffer is how many IDs a Revocations channel holds before
// further ones are dropped for that receiver.
const revocationBuffer = 256

// Revocations implements Store. The memory store announces its own
// deletions only: it is not shared.
func (m *Memory) Revocations(ctx context.Context) (<-chan string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	ch := make(chan string, revocationBuffer)
	m.subs[ch] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
		case <-m.stop:
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.subs[ch]; ok {
			delete(m.subs, ch)
			close(ch)
		}
	}()
	return ch, nil
}

// announceLocked offers id to every Revocations receiver without blocking.
func (m *Memory) announceLocked(id string) {
	for ch := range m.subs {
		select {
		case ch <- id:
		default: // receiver behind: dropped (best effort, see Store)
		}
	}
}

// SavePending implements Store.
func (m *Memory) SavePending(ctx context.Context, key string, p *PendingLogin, ttl time.Duration) error {
	if key == "" || p == nil {
		return errors.New("session: save pending: empty key or login")
	}
	if ttl <= 0 {
		return errors.New("session: save pending: ttl must be positive")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	if _, exists := m.pending[key]; !exists && len(m.pending) >= m.max {
		m.sweepLocked(m.now())
		if len(m.pending) >= m.max {
			return fmt.Errorf("session: save pending: %w (%d pending logins)", ErrFull, len(m.pending))
		}
	}
	m.pending[key] = memEntry[PendingLogin]{v: *p, expires: m.now().Add(ttl)}
	return nil
}

// TakePending implements Store.
func (m *Memory) TakePending(ctx context.Context, key string) (*PendingLogin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	e, ok := m.pending[key]
	if !ok {
		return nil, ErrNotFound
	}
	delete(m.pending, key)
	if !m.now().Before(e.expires) {
		return nil, ErrNotFound
	}
	p := e.v
	return &p, nil
}

// MarkAssertionUsed implements Store.
func (m *Memory) MarkAssertionUsed(ctx context.Context, id string, until time.Time) (bool, error) {
	if id == "" {
		return false, errors.New("session: mark assertion: empty ID")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	now := m.now()
	if exp, ok := m.used[id]; ok && now.Before(exp) {
		return false, nil
	}
	if len(m.used) >= m.max {
		m.sweepLocked(now)
		if len(m.used) >= m.max {
			return false, fmt.Errorf("session: mark assertion: %w (%d assertion ids)", ErrFull, len(m.used))
		}
	}
	if !until.After(now) {
		// Already past its validity: it will be refused as expired anyway,
		// but remember it briefly so that the answer is stable.
		until = now.Add(time.Minute)
	}
	m.used[id] = until
	return true, nil
}

// GetBlob implements Store.
func (m *Memory) GetBlob(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("session: get blob: empty name")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	b, ok := m.blobs[name]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(b), nil
}

// PutBlob implements Store.
func (m *Memory) PutBlob(ctx context.Context, name string, data []byte) error {
	if name == "" {
		return errors.New("session: put blob: empty name")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	m.blobs[name] = append([]byte{}, data...)
	return nil
}

// CompareAndSwapBlob implements Store.
func (m *Memory) CompareAndSwapBlob(ctx context.Context, name string, old, new []byte) (bool, error) {
	if name == "" {
		return false, errors.New("session: compare and swap blob: empty name")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return false, err
	}
	cur, exists := m.blobs[name]
	if old == nil && exists || old != nil && (!exists || !bytes.Equal(cur, old)) {
		return false, nil
	}
	m.blobs[name] = append([]byte{}, new...)
	return true, nil
}

// PutCached implements Store.
func (m *Memory) PutCached(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	if key == "" {
		return errors.New("session: put cached: empty key")
	}
	if ttl <= 0 {
		return errors.New("session: put cached: ttl must be positive")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	if _, exists := m.cached[key]; !exists && len(m.cached) >= m.max {
		m.sweepLocked(m.now())
		if len(m.cached) >= m.max {
			return fmt.Errorf("session: put cached: %w (%d cached values)", ErrFull, len(m.cached))
		}
	}
	m.cached[key] = memEntry[[]byte]{v: bytes.Clone(data), expires: m.now().Add(ttl)}
	return nil
}

// GetCached implements Store.
func (m *Memory) GetCached(ctx context.Context, key string) ([]byte, error) {
	if key == "" {
		return nil, errors.New("session: get cached: empty key")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	e, ok := m.cached[key]
	if !ok || !m.now().Before(e.expires) {
		return nil, ErrNotFound
	}
	return bytes.Clone(e.v), nil
}

// Ping implements Store.
func (m *Memory) Ping(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check(ctx)
}

// Close stops the sweeper, closes every Revocations channel and drops all
// state. It is safe to call twice.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.sessions, m.byUser, m.pending, m.used, m.blobs, m.cached = nil, nil, nil, nil, nil, nil
	for ch := range m.subs {
		close(ch)
	}
	m.subs = nil
	m.mu.Unlock()
	close(m.stop)
	<-m.done
	return nil
}

// Len returns the number of sessions, pending logins and assertion IDs held,
// expired ones included until the next sweep. It is for tests and metrics.
func (m *Memory) Len() (sessions, pending, used int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions), len(m.pending), len(m.used)
}

// Sweep removes expired entries now.
func (m *Memory) Sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.sweepLocked(m.now())
	}
}

func (m *Memory) sweepLoop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

func (m *Memory) sweepLocked(now time.Time) {
	for k, e := range m.sessions {
		if !now.Before(e.expires) {
			m.deleteSessionLocked(k)
		}
	}
	for k, e := range m.pending {
		if !now.Before(e.expires) {
			delete(m.pending, k)
		}
	}
	for k, exp := range m.used {
		if !now.Before(exp) {
			delete(m.used, k)
		}
	}
	for k, e := range m.cached {
		if !now.Before(e.expires) {
			delete(m.cached, k)
		}
	}
}
