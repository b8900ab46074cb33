package balancer

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
