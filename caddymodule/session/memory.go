package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// MemoryOptions configures a memory store. Zero values take the defaults.
type MemoryOptions struct {
	// MaxEntries bounds each of the store's maps (sessions, pending logins,
	// replay cache), so that a flood of login starts cannot exhaust memory.
	// Default 1,000,000.
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
	pending  map[string]memEntry[PendingLogin]
	used     map[string]time.Time
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
		pending:  make(map[string]memEntry[PendingLogin]),
		used:     make(map[string]time.Time),
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
	m.sessions[s.ID] = memEntry[Session]{v: *s, expires: m.now().Add(ttl)}
	return nil
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
	delete(m.sessions, id)
	return nil
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

// Ping implements Store.
func (m *Memory) Ping(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check(ctx)
}

// Close stops the sweeper and drops all state. It is safe to call twice.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.sessions, m.pending, m.used = nil, nil, nil
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
			delete(m.sessions, k)
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
}
