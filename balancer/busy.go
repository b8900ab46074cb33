package balancer

import (
	"math/bits"
	"time"
)

// busyScale makes busyness with a concurrency limit an integer fraction, as Passenger's
// (sessions * INT_MAX) / concurrency does.
const busyScale = 1 << 20

// Busyness is how busy a worker is, lower being less busy: its sessions in flight when its
// concurrency is unlimited (0), otherwise sessions/concurrency. It is never collapsed to
// idle/busy: that was Passenger 4.0.56's bug, where every worker with unlimited concurrency
// counted 1 as soon as it had any session, and sessions piled up on a few workers.
func Busyness(sessions int64, concurrency int) int64 {
	if concurrency <= 0 {
		return sessions
	}
	return sessions * busyScale / int64(concurrency)
}

// Full reports whether a worker takes no more sessions.
func Full(sessions int64, concurrency int) bool {
	return concurrency > 0 && sessions >= int64(concurrency)
}

// StallLevel says whether a worker has stopped answering, and how long since: 0 while it
// answers, otherwise 1, 2, 3... as its silence passes StallAfter(typical) and doubles past it
// (typical: how long the pool's answers take). A worker is stalled when it owes answers (to
// owed sessions in flight) and has been silent past StallAfter: since its last answer, or since
// it began to owe one if that came later. A session goes to the least busy worker of the lowest
// level with room: a stalled worker gets one only when every worker with room is stalled, the
// one silent the shortest first (a worker the kernel left without CPU for a few milliseconds,
// rather than one stuck behind a call), and then by count; or as a probe, once it has been
// given none for probeEvery, in case it was only slow (a long poll, a report): it answers, and
// counts again.
//
// It is the seed's busyness bug again, one level down: a count of sessions says "one session,
// nearly idle" about an async worker (Node.js, asyncio, a Go app) whose event loop one
// synchronous call blocks, and every new session went into it to wait for the call: behind a
// 50 ms call, fast requests' p99 was 50 ms, as behind HAProxy's leastconn.
func StallLevel(owed int64, silent, sinceGiven, typical time.Duration) int {
	after := StallAfter(typical)
	if owed == 0 || silent <= after || sinceGiven >= probeEvery {
		return 0
	}
	return bits.Len64(uint64(silent / after))
}

// StallAfter is how long a worker may leave sessions unanswered before it counts as stalled:
// four times the pool's typical answer time, which a worker that merely got a slow request
// among fast ones does not reach before its next answer, and never less than minStall, below
// which a worker that the kernel did not run for a moment would look stalled.
func StallAfter(typical time.Duration) time.Duration {
	return max(4*typical, minStall)
}

const (
	minStall   = time.Millisecond
	probeEvery = time.Second
)
