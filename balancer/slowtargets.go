package balancer

import (
	"sync/atomic"
	"time"
)

// A worker whose event loop a request blocks is seen stalled only once it has been silent for
// a while, and in that while the sessions routed to it wait out the block too: routing alone
// cannot tell them from the sessions a worker answers at once. What it can tell is the request:
// a target (method and path, without the query) whose answers lately took far longer than the
// pool's is likely to take as long again. The worker given one counts as stalled from that
// moment (StallLevel 1) until it answers that request or one given after it: an async worker
// that merely waits on a database answers the next request at once, and counts again; one
// whose event loop the request blocks does not, and is not fed while it cannot answer.

// slowTargets learns how long the answers to each target take: a small table of moving
// averages, indexed by a hash of the target, which a target whose hash collides with another's
// overwrites. Lock-free: each slot is one word.
type slowTargets struct {
	slots [256]atomic.Uint64 // the hash's top 24 bits, and the average in µs in the low 40
}

const tagShift = 40

// targetKey hashes a request's method and path, without its query (FNV-1a).
func targetKey(method, path []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range method {
		h = (h ^ uint32(c)) * 16777619
	}
	h = (h ^ ' ') * 16777619
	for _, c := range path {
		if c == '?' {
			break
		}
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

func (t *slowTargets) slot(key uint32) (*atomic.Uint64, uint64) {
	return &t.slots[key&255], uint64(key>>8) << tagShift
}

// expected is how long key's answers have lately taken; 0 when it is not known.
func (t *slowTargets) expected(key uint32) time.Duration {
	s, tag := t.slot(key)
	v := s.Load()
	if v&^(1<<tagShift-1) != tag {
		return 0
	}
	return time.Duration(v&(1<<tagShift-1)) * time.Microsecond
}

// learn counts an answer of key's that took took: the average moves a quarter of the way to it,
// and to at most four times itself, so that a fast target's request that waited out another's
// block (one of a hundred, say) does not make it look slow, while a target that got slow
// doubles its average every two answers.
func (t *slowTargets) learn(key uint32, took time.Duration) {
	s, tag := t.slot(key)
	us := int64(max(took, 0) / time.Microsecond)
	if avg := int64(t.expected(key) / time.Microsecond); avg > 0 {
		us = avg + (min(us, 4*avg)-avg)/4
	}
	s.Store(tag | uint64(min(us, 1<<tagShift-1)))
}
