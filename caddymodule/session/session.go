// Package session keeps engage-sso's server-side state: sessions behind
// opaque cookies (indexed by user, so that all of a user's sessions can be
// revoked at once), pending logins (AuthnRequest ids keyed by RelayState),
// the assertion replay cache, small shared blobs (signing keys, dynamic
// configuration) that every instance must see, and expiring cached values
// (such as group IDs resolved through Microsoft Graph).
//
// Store is the one interface every backend implements: NewMemory is the
// embedded single-instance store, NewRedis the distributed one (standalone,
// Sentinel or Cluster). Every store must pass the shared suite in package
// storetest.
//
// # Local caches and revocation
//
// An instance may cache sessions in memory so that an authenticated request
// does not cost a store round trip. Such a cache must subscribe to
// Revocations and drop the IDs it receives. Delivery is best effort (Redis
// pub/sub: a message published while a subscriber is disconnected is lost),
// so a cache entry must also expire on its own after a short, bounded time;
// the store stays the source of truth.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrNotFound is returned when a session, pending login, blob or cached
// value does not exist or has expired.
var ErrNotFound = errors.New("session: not found")

// ErrFull is returned when a bounded store refuses a new entry. Callers fail
// closed (503).
var ErrFull = errors.New("session: store is full")

// Store keeps server-side state. Implementations are safe for concurrent
// use; every method honours ctx. Errors other than ErrNotFound and ErrFull
// mean the store could not answer: callers fail closed.
type Store interface {
	// SaveSession creates or replaces s, expiring after ttl; a ttl of zero
	// or less deletes it. When s.UserID is set the session is also indexed
	// under that user for DeleteUserSessions. A session's UserID is not
	// expected to change: if it does, a store may keep the session in the
	// old user's index until it expires (so revoking the old user would
	// also end it, which fails safe).
	SaveSession(ctx context.Context, s *Session, ttl time.Duration) error
	// LoadSession returns the session with the given ID, or ErrNotFound.
	// The returned value is the caller's to modify.
	// RenewSession replaces s and its TTL only if the session still exists
	// (it was not deleted or revoked meanwhile), atomically; renewed reports
	// whether it did. The idle-timeout renewal uses it, so that a renewal
	// racing with a logout or revoke-all never brings the session back.
	RenewSession(ctx context.Context, s *Session, ttl time.Duration) (renewed bool, err error)
	LoadSession(ctx context.Context, id string) (*Session, error)
	// DeleteSession removes a session and its entry in the user index, and
	// announces the ID on Revocations. Deleting a missing session is not an
	// error (the ID is still announced).
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions removes every live session indexed under userID
	// (revoke-all: deprovisioning, an administrator's "sign out
	// everywhere") and returns the IDs of the sessions it removed, in no
	// particular order; none is not an error. The IDs are announced on
	// Revocations.
	DeleteUserSessions(ctx context.Context, userID string) (ids []string, err error)

	// Revocations returns a channel that receives the ID of every session
	// deleted through DeleteSession or DeleteUserSessions, by this instance
	// or any other sharing the store, from the moment Revocations returns.
	// The channel is closed when ctx ends or the store is closed. Delivery
	// is best effort: IDs are dropped when the receiver falls behind or the
	// connection to a networked store is down, so callers that cache
	// sessions must also bound how long they keep an entry. Sessions that
	// merely expire are not announced.
	Revocations(ctx context.Context) (<-chan string, error)

	// SavePending stores a pending login under key (the RelayState),
	// expiring after ttl.
	SavePending(ctx context.Context, key string, p *PendingLogin, ttl time.Duration) error
	// TakePending returns and removes the pending login under key, atomically,
	// so a RelayState is used at most once. It returns ErrNotFound when there
	// is none.
	TakePending(ctx context.Context, key string) (*PendingLogin, error)

	// MarkAssertionUsed records an assertion ID until the given time. It
	// returns first=false if the ID was already recorded (a replay).
	MarkAssertionUsed(ctx context.Context, id string, until time.Time) (first bool, err error)

	// GetBlob returns the shared blob with the given name, or ErrNotFound.
	// Blobs hold small values every instance must agree on (signing keys,
	// dynamic configuration); they do not expire. The returned slice is the
	// caller's.
	GetBlob(ctx context.Context, name string) ([]byte, error)
	// PutBlob creates or replaces a blob unconditionally.
	PutBlob(ctx context.Context, name string, data []byte) error
	// CompareAndSwapBlob replaces the blob with new only if its current
	// value is old, atomically, and reports whether it did. A nil old means
	// "only if there is no blob" (create); a non-nil empty old matches an
	// existing empty blob. Callers that lose the race re-read and retry.
	CompareAndSwapBlob(ctx context.Context, name string, old, new []byte) (swapped bool, err error)

	// PutCached stores data under key until ttl has passed, replacing any
	// earlier value. Cached values are a convenience: a caller that finds
	// nothing recomputes them. ttl must be positive.
	PutCached(ctx context.Context, key string, data []byte, ttl time.Duration) error
	// GetCached returns the value under key, or ErrNotFound when there is
	// none or it has expired. The returned slice is the caller's.
	GetCached(ctx context.Context, key string) ([]byte, error)

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources and closes every Revocations
	// channel.
	Close() error
}

// Session is the server-side record behind a session cookie.
type Session struct {
	// ID is the store key: a hash of the cookie value (see NewToken), so a
	// copy of the store cannot be replayed as cookies. It is also the
	// non-secret "sid" claim of the identity token.
	ID string `json:"id"`

	UserID      string `json:"uid,omitempty"`
	Email       string `json:"em"`
	GivenName   string `json:"gn,omitempty"`
	FamilyName  string `json:"fn,omitempty"`
	DisplayName string `json:"dn,omitempty"`
	Role        string `json:"ro"`
	Company     string `json:"co"`
	Provider    string `json:"pr"`
	ObjectID    string `json:"oid,omitempty"`
	TenantID    string `json:"tid,omitempty"`

	// NameID, NameIDFormat and SessionIndex come from the assertion; Single
	// Logout needs them.
	NameID       string `json:"nid,omitempty"`
	NameIDFormat string `json:"nif,omitempty"`
	SessionIndex string `json:"si,omitempty"`

	// CreatedAt is when the user signed in.
	CreatedAt time.Time `json:"ca"`
	// LastSeen is the last time the session was renewed (idle timeout base).
	LastSeen time.Time `json:"ls"`
	// ExpiresAt is the absolute end of the session.
	ExpiresAt time.Time `json:"ea"`
}

// PendingLogin is an SP-initiated login between the AuthnRequest and the
// Response, kept server-side under an unguessable RelayState.
type PendingLogin struct {
	// RequestID is the AuthnRequest ID the Response must answer.
	RequestID string `json:"rid"`
	// Provider is the label the login was started for.
	Provider string `json:"pr"`
	// ReturnTo is the local path to land on after login.
	ReturnTo string `json:"rt"`
	// Binding, when set, is the hash of a pre-auth cookie value that must
	// come back with the Response (see the handler for when it is used).
	Binding string `json:"b,omitempty"`
	// CreatedAt is when the login started.
	CreatedAt time.Time `json:"ca"`
}

// NewToken returns a new random cookie value with 256 bits of entropy and
// the session ID (store key) derived from it.
func NewToken(r io.Reader) (token, id string, err error) {
	if r == nil {
		r = rand.Reader
	}
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", "", fmt.Errorf("session: reading randomness: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, IDFromToken(token), nil
}

// IDFromToken derives the session ID (store key) from a cookie value.
func IDFromToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:24])
}

// ValidToken reports whether s has the shape of a NewToken value, so that
// garbage cookies are refused without touching the store.
func ValidToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Expired reports whether the session is over at now, given the idle
// timeout (0 disables the idle check).
func (s *Session) Expired(now time.Time, idle time.Duration) bool {
	if !now.Before(s.ExpiresAt) {
		return true
	}
	return idle > 0 && !now.Before(s.LastSeen.Add(idle))
}

// TTL returns how long the store must keep the session from now: until the
// idle timeout or the absolute end, whichever comes first.
func (s *Session) TTL(now time.Time, idle time.Duration) time.Duration {
	end := s.ExpiresAt
	if idle > 0 {
		if e := s.LastSeen.Add(idle); e.Before(end) {
			end = e
		}
	}
	return end.Sub(now)
}
