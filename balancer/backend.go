// Package balancer is tender's front socket: it routes each new session to the ready worker
// with the fewest sessions in flight.
package balancer

import (
	"sync/atomic"
)

// Backend is one worker as the balancer sees it. The pool creates it and says when it may
// take sessions; the balancer counts the sessions.
type Backend struct {
	ID   int    // the worker's TENDER_WORKER_ID
	Addr string // where the worker listens: 127.0.0.1:PORT

	routable  atomic.Bool
	sessions  atomic.Int64
	processed atomic.Uint64
}

// NewBackend makes a backend that takes no sessions until SetRoutable(true).
func NewBackend(id int, addr string) *Backend { return &Backend{ID: id, Addr: addr} }

// SetRoutable says whether new sessions may go to the backend (ready and not draining).
func (b *Backend) SetRoutable(ok bool) { b.routable.Store(ok) }

// Routable reports whether new sessions may go to the backend.
func (b *Backend) Routable() bool { return b.routable.Load() }

// Sessions is the number of sessions in flight.
func (b *Backend) Sessions() int64 { return b.sessions.Load() }

// Processed is the number of sessions the backend has finished.
func (b *Backend) Processed() uint64 { return b.processed.Load() }
