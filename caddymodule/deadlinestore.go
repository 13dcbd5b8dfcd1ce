package caddymodule

import (
	"context"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// callTimeouter is implemented by store modules whose calls can hang (a
// networked store): CallTimeout bounds each call, so that while the store
// is unreachable a request gets its 503 page promptly instead of waiting on
// client retries and reconnects.
type callTimeouter interface {
	CallTimeout() time.Duration
}

// deadlineStore gives every store call a deadline.
type deadlineStore struct {
	session.Store
	timeout time.Duration
}

func (d deadlineStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

func (d deadlineStore) SaveSession(ctx context.Context, s *session.Session, ttl time.Duration) error {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.SaveSession(ctx, s, ttl)
}

func (d deadlineStore) RenewSession(ctx context.Context, s *session.Session, ttl time.Duration) (bool, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.RenewSession(ctx, s, ttl)
}

func (d deadlineStore) LoadSession(ctx context.Context, id string) (*session.Session, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.LoadSession(ctx, id)
}

func (d deadlineStore) DeleteSession(ctx context.Context, id string) error {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.DeleteSession(ctx, id)
}

func (d deadlineStore) DeleteUserSessions(ctx context.Context, userID string) ([]string, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.DeleteUserSessions(ctx, userID)
}

func (d deadlineStore) SavePending(ctx context.Context, key string, p *session.PendingLogin, ttl time.Duration) error {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.SavePending(ctx, key, p, ttl)
}

func (d deadlineStore) TakePending(ctx context.Context, key string) (*session.PendingLogin, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.TakePending(ctx, key)
}

func (d deadlineStore) MarkAssertionUsed(ctx context.Context, id string, until time.Time) (bool, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.MarkAssertionUsed(ctx, id, until)
}

func (d deadlineStore) GetBlob(ctx context.Context, name string) ([]byte, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.GetBlob(ctx, name)
}

func (d deadlineStore) PutBlob(ctx context.Context, name string, data []byte) error {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.PutBlob(ctx, name, data)
}

func (d deadlineStore) CompareAndSwapBlob(ctx context.Context, name string, old, new []byte) (bool, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.CompareAndSwapBlob(ctx, name, old, new)
}

func (d deadlineStore) PutCached(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.PutCached(ctx, key, data, ttl)
}

func (d deadlineStore) GetCached(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.GetCached(ctx, key)
}

func (d deadlineStore) Ping(ctx context.Context) error {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.Store.Ping(ctx)
}

// Revocations is a long-lived subscription: no deadline.
func (d deadlineStore) Revocations(ctx context.Context) (<-chan string, error) {
	return d.Store.Revocations(ctx)
}

var _ session.Store = deadlineStore{}
