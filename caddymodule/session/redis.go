package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys and channel (P is RedisOptions.Prefix, default "engage_sso:"):
//
//	key                   type     value                               expiry
//	P s:<session id>      string   Session JSON (compact names)        the session's TTL
//	P u:<user id>         zset     session IDs scored by expiry (ms)   its latest member
//	P p:<relay state>     string   PendingLogin JSON                   the login timeout
//	P a:<assertion id>    string   "1"                                 the assertion's end of validity
//	P b:<name>            string   blob                                none
//	P c:<key>             string   cached value                        the value's TTL
//	P revoked             channel  IDs of deleted sessions (pub/sub)   -
//
// Every command and script touches a single key, so keys may spread over
// all of a Cluster's slots and need no hash tags. (A prefix holding a hash
// tag, like "{sso}:", pins every key to one slot; that works too, without
// the sharding.) Keys are distinct per kind whatever the IDs contain,
// because the kind letter comes right after the prefix.

// DefaultRedisPrefix is the key prefix when RedisOptions.Prefix is empty.
const DefaultRedisPrefix = "engage_sso:"

// RedisOptions configures a Redis store.
type RedisOptions struct {
	// Client is the connection to Redis: a *redis.Client (standalone), a
	// failover client (Sentinel) or a *redis.ClusterClient, typically from
	// redis.NewUniversalClient. Required. The store owns it from now on:
	// Close closes it, so do not share one client between stores.
	Client redis.UniversalClient
	// Prefix starts every key and the revocation channel, so that several
	// deployments can share one Redis. Default DefaultRedisPrefix.
	Prefix string
	// Now is the clock, used to turn assertion validity times into TTLs;
	// nil means time.Now. Key expiry itself runs on Redis's clock.
	Now func() time.Time
}

// Redis is a Store in Redis (standalone, Sentinel or Cluster) shared by any
// number of instances. It needs Redis 6.2 or later (GETDEL). Sessions live
// as JSON strings with a TTL, indexed per user in a sorted set scored by
// expiry that is pruned on every write, so the index never outgrows the
// live sessions (give or take a ten-second grace). Revocations travel over
// pub/sub.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	channel string
	now     func() time.Time
	// indexGrace keeps index entries a little longer than their sessions,
	// since the entry is written before the session (a session is never
	// live without its entry). Stale entries cost nothing: only sessions
	// actually deleted are reported.
	indexGrace time.Duration

	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close: ends Revocations forwarders
	wg     sync.WaitGroup
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Redis store using o.Client. It does no I/O: use Ping
// to check the connection.
func NewRedis(o RedisOptions) (*Redis, error) {
	if o.Client == nil {
		return nil, errors.New("session: redis: no client")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Redis{
		client:     o.Client,
		prefix:     o.Prefix,
		channel:    o.Prefix + "revoked",
		now:        o.Now,
		indexGrace: 10 * time.Second,
		done:       make(chan struct{}),
	}, nil
}

func (r *Redis) sessionKey(id string) string  { return r.prefix + "s:" + id }
func (r *Redis) userKey(userID string) string { return r.prefix + "u:" + userID }
func (r *Redis) pendingKey(key string) string { return r.prefix + "p:" + key }
func (r *Redis) usedKey(id string) string     { return r.prefix + "a:" + id }
func (r *Redis) blobKey(name string) string   { return r.prefix + "b:" + name }
func (r *Redis) cachedKey(key string) string  { return r.prefix + "c:" + key }

// wrap adds context to a Redis error; redis.Nil becomes ErrNotFound.
func wrap(op string, err error) error {
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	return fmt.Errorf("session: redis: %s: %w", op, err)
}

// ms returns d in whole milliseconds, at least 1.
func ms(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}

// indexScript adds a session to a user's index, scored by its expiry on
// Redis's clock, prunes expired members and keeps the index key alive as
// long as its latest member. KEYS[1] index; ARGV[1] session ID; ARGV[2]
// TTL in ms.
var indexScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
`)

// SaveSession implements Store. The user index entry is written before the
// session, so that a session is never live without it.
func (r *Redis) SaveSession(ctx context.Context, s *Session, ttl time.Duration) error {
	if s == nil || s.ID == "" {
		return errors.New("session: save: session has no ID")
	}
	if ttl <= 0 {
		return r.DeleteSession(ctx, s.ID)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("session: redis: encoding session: %w", err)
	}
	if s.UserID != "" {
		err := indexScript.Run(ctx, r.client, []string{r.userKey(s.UserID)}, s.ID, ms(ttl+r.indexGrace)).Err()
		if err != nil {
			return wrap("indexing session", err)
		}
	}
	if err := r.client.Set(ctx, r.sessionKey(s.ID), data, time.Duration(ms(ttl))*time.Millisecond).Err(); err != nil {
		return wrap("save session", err)
	}
	return nil
}

// RenewSession implements Store: SET XX writes only if the session key
// still exists, so a renewal racing with a delete cannot recreate it. The
// user index is then extended to the new expiry.
func (r *Redis) RenewSession(ctx context.Context, s *Session, ttl time.Duration) (bool, error) {
	if s == nil || s.ID == "" {
		return false, errors.New("session: renew: session has no ID")
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, nil
	}
	data, err := json.Marshal(s)
	if err != nil {
		return false, fmt.Errorf("session: redis: encoding session: %w", err)
	}
	err = r.client.SetArgs(ctx, r.sessionKey(s.ID), data, redis.SetArgs{Mode: "XX", TTL: time.Duration(ms(ttl)) * time.Millisecond}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, wrap("renew session", err)
	}
	if s.UserID != "" {
		if err := indexScript.Run(ctx, r.client, []string{r.userKey(s.UserID)}, s.ID, ms(ttl+r.indexGrace)).Err(); err != nil {
			return true, wrap("indexing session", err)
		}
	}
	return true, nil
}

// LoadSession implements Store.
func (r *Redis) LoadSession(ctx context.Context, id string) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := r.client.Get(ctx, r.sessionKey(id)).Bytes()
	if err != nil {
		return nil, wrap("load session", err)
	}
	s := new(Session)
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("session: redis: decoding session: %w", err)
	}
	if s.ID != id {
		return nil, errors.New("session: redis: stored session does not match its key")
	}
	return s, nil
}

// DeleteSession implements Store.
func (r *Redis) DeleteSession(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := r.client.GetDel(ctx, r.sessionKey(id)).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return wrap("delete session", err)
	}
	var owner struct {
		UserID string `json:"uid"`
	}
	if len(data) > 0 {
		// A record that does not decode has no index entry to remove.
		_ = json.Unmarshal(data, &owner)
	}
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if owner.UserID != "" {
			p.ZRem(ctx, r.userKey(owner.UserID), id)
		}
		p.Publish(ctx, r.channel, id)
		return nil
	})
	if err != nil {
		return wrap("delete session", err)
	}
	return nil
}

// DeleteUserSessions implements Store.
func (r *Redis) DeleteUserSessions(ctx context.Context, userID string) ([]string, error) {
	if userID == "" {
		return nil, errors.New("session: delete user sessions: empty user ID")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Take the index atomically, so that concurrent calls do not both
	// report a session.
	var members *redis.StringSliceCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		members = p.ZRange(ctx, r.userKey(userID), 0, -1)
		p.Del(ctx, r.userKey(userID))
		return nil
	})
	if err != nil {
		return nil, wrap("delete user sessions", err)
	}
	ids := members.Val()
	if len(ids) == 0 {
		return nil, nil
	}
	dels := make([]*redis.IntCmd, len(ids))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			dels[i] = p.Del(ctx, r.sessionKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, wrap("delete user sessions", err)
	}
	deleted := ids[:0]
	for i, id := range ids {
		if dels[i].Val() > 0 {
			deleted = append(deleted, id)
		}
	}
	if len(deleted) == 0 {
		return nil, nil
	}
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range deleted {
			p.Publish(ctx, r.channel, id)
		}
		return nil
	})
	if err != nil {
		// The sessions are gone; only other instances' caches may lag.
		return deleted, wrap("announcing revoked sessions", err)
	}
	return deleted, nil
}

// Revocations implements Store. It subscribes before returning, so every
// deletion after it returns is delivered (best effort: see Store). The
// subscription reconnects on its own after a connection loss; IDs
// published meanwhile are lost.
func (r *Redis) Revocations(ctx context.Context) (<-chan string, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("session: redis: store is closed")
	}
	r.wg.Add(1)
	r.mu.Unlock()

	ps := r.client.Subscribe(ctx, r.channel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		r.wg.Done()
		return nil, wrap("subscribing to revocations", err)
	}
	out := make(chan string, revocationBuffer)
	go func() {
		defer r.wg.Done()
		defer close(out)
		defer ps.Close()
		in := ps.Channel(redis.WithChannelSize(revocationBuffer))
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.done:
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				case <-ctx.Done():
					return
				case <-r.done:
					return
				}
			}
		}
	}()
	return out, nil
}

// SavePending implements Store.
func (r *Redis) SavePending(ctx context.Context, key string, p *PendingLogin, ttl time.Duration) error {
	if key == "" || p == nil {
		return errors.New("session: save pending: empty key or login")
	}
	if ttl <= 0 {
		return errors.New("session: save pending: ttl must be positive")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("session: redis: encoding pending login: %w", err)
	}
	if err := r.client.Set(ctx, r.pendingKey(key), data, time.Duration(ms(ttl))*time.Millisecond).Err(); err != nil {
		return wrap("save pending", err)
	}
	return nil
}

// TakePending implements Store, with GETDEL.
func (r *Redis) TakePending(ctx context.Context, key string) (*PendingLogin, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := r.client.GetDel(ctx, r.pendingKey(key)).Bytes()
	if err != nil {
		return nil, wrap("take pending", err)
	}
	p := new(PendingLogin)
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("session: redis: decoding pending login: %w", err)
	}
	return p, nil
}

// MarkAssertionUsed implements Store, with SET NX.
func (r *Redis) MarkAssertionUsed(ctx context.Context, id string, until time.Time) (bool, error) {
	if id == "" {
		return false, errors.New("session: mark assertion: empty ID")
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	ttl := until.Sub(r.now())
	if ttl <= 0 {
		// Already past its validity: it will be refused as expired anyway,
		// but remember it briefly so that the answer is stable.
		ttl = time.Minute
	}
	first, err := r.client.SetNX(ctx, r.usedKey(id), "1", time.Duration(ms(ttl))*time.Millisecond).Result()
	if err != nil {
		return false, wrap("mark assertion", err)
	}
	return first, nil
}

// GetBlob implements Store.
func (r *Redis) GetBlob(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("session: get blob: empty name")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := r.client.Get(ctx, r.blobKey(name)).Bytes()
	if err != nil {
		return nil, wrap("get blob", err)
	}
	return b, nil
}

// PutBlob implements Store.
func (r *Redis) PutBlob(ctx context.Context, name string, data []byte) error {
	if name == "" {
		return errors.New("session: put blob: empty name")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.client.Set(ctx, r.blobKey(name), data, 0).Err(); err != nil {
		return wrap("put blob", err)
	}
	return nil
}

// casScript swaps a blob if it holds the expected value. KEYS[1] blob;
// ARGV[1] "1" if an old value is expected, "0" for create-only; ARGV[2]
// old; ARGV[3] new.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
	if cur then return 0 end
elseif cur ~= ARGV[2] then
	return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
`)

// CompareAndSwapBlob implements Store, with a Lua script.
func (r *Redis) CompareAndSwapBlob(ctx context.Context, name string, old, new []byte) (bool, error) {
	if name == "" {
		return false, errors.New("session: compare and swap blob: empty name")
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	expect := "1"
	if old == nil {
		expect = "0"
	}
	n, err := casScript.Run(ctx, r.client, []string{r.blobKey(name)}, expect, old, new).Int()
	if err != nil {
		return false, wrap("compare and swap blob", err)
	}
	return n == 1, nil
}

// PutCached implements Store, with SET PX.
func (r *Redis) PutCached(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	if key == "" {
		return errors.New("session: put cached: empty key")
	}
	if ttl <= 0 {
		return errors.New("session: put cached: ttl must be positive")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.client.Set(ctx, r.cachedKey(key), data, time.Duration(ms(ttl))*time.Millisecond).Err(); err != nil {
		return wrap("put cached", err)
	}
	return nil
}

// GetCached implements Store.
func (r *Redis) GetCached(ctx context.Context, key string) ([]byte, error) {
	if key == "" {
		return nil, errors.New("session: get cached: empty key")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := r.client.Get(ctx, r.cachedKey(key)).Bytes()
	if err != nil {
		return nil, wrap("get cached", err)
	}
	return b, nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close ends every Revocations subscription and closes the client. It is
// safe to call twice.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	r.mu.Unlock()
	r.wg.Wait()
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("session: redis: closing client: %w", err)
	}
	return nil
}
