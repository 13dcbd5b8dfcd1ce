package session

import "time"

// SetIndexGrace sets how long user index entries outlive their sessions,
// so tests can watch pruning without waiting for the default grace.
func SetIndexGrace(r *Redis, d time.Duration) { r.indexGrace = d }
