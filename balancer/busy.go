package balancer

import "time"

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

// StallLevel says whether a worker answers: 0 when it does, 1 when it has stopped, 2 when it
// is about to. A session goes to the least busy worker of the lowest level with room.
//
// A worker has stopped answering (1) when it owes answers (to owed sessions in flight) and has
// answered none for longer than StallAfter(typical), typical being how long the pool's answers
// take, while others answered (othersAnswered: the pool heard an answer since it went silent):
// silent counts from its last answer, or from when it began to owe one if that came later.
// When no worker answers (every one holds long sessions, as in the seed scenario), none is
// silent for longer than the others, and sessions go by count: otherwise the worker that began
// to owe last would take every session until it had been silent as long as the others.
// It is about to stop (2) from the moment it is given a request of a target whose answers
// lately took longer than that (slowFor, 0 for none; see slowTargets), until it answers that
// request or one given after it. Either way it is given a new session only when no worker of a
// lower level has room, or as a probe, once it has been given none for probeEvery, in case it
// was only slow (a long poll, a report): it answers, and counts again.
//
// It is the seed's busyness bug again, one level down: a count of sessions says "one session,
// nearly idle" about an async worker (Node.js, asyncio, a Go app) whose event loop one
// synchronous call blocks, and every new session went into it to wait for the call: behind a
// 50 ms call, fast requests' p99 was 50 ms, as behind HAProxy's leastconn. Silence shows such a
// worker only once it has lasted, and the sessions given to it meanwhile wait out the call;
// the slow request that blocks it, known by its target, shows it at once.
func StallLevel(owed int64, silent time.Duration, othersAnswered bool, slowFor, sinceGiven, typical time.Duration) int {
	after := StallAfter(typical)
	switch {
	case owed == 0 || sinceGiven >= probeEvery:
		return 0
	case slowFor > after:
		return 2
	case silent > after && othersAnswered:
		return 1
	}
	return 0
}

// StallAfter is how long a worker may leave sessions unanswered before it counts as stalled:
// four times the pool's typical answer time, which a worker that merely got a slow request
// among fast ones does not reach before its next answer, and never less than minStall, below
// which a worker that a busy machine did not run for a few of the kernel's time slices, or
// that got a burst of sessions at once, would look stalled.
func StallAfter(typical time.Duration) time.Duration {
	return max(4*typical, minStall)
}

const (
	minStall   = 10 * time.Millisecond
	probeEvery = time.Second
)
