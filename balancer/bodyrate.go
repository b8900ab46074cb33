package balancer

import (
	"errors"
	"net"
	"time"
)

// errBodyTooSlow is a request body that fell TENDER_CLIENT_TIMEOUT behind TENDER_BODY_MIN_RATE.
var errBodyTooSlow = errors.New("the request's body came too slowly")

// bodyClock holds a request body to a minimum average rate, as Apache's mod_reqtimeout does
// with MinRate: a client trickling a byte every few seconds never stays silent for
// TENDER_CLIENT_TIMEOUT, and held its worker's session for as long as it liked. The client has
// credit, the time it may still keep tender waiting for the body: waiting spends it, and each
// byte earns 1/rate s of it back. The credit is capped at the client timeout, the longest
// silence allowed, so that a fast start buys no long trickle after it.
type bodyClock struct {
	rate   float64       // bytes a second; 0: no minimum
	window time.Duration // TENDER_CLIENT_TIMEOUT
	credit time.Duration
}

// start begins a body with a full credit.
func (c *bodyClock) start() { c.credit = c.window }

// read counts a read that waited for waited and brought n bytes.
func (c *bodyClock) read(waited time.Duration, n int) {
	if c.rate > 0 {
		earned := time.Duration(float64(n) / c.rate * float64(time.Second))
		c.credit = min(c.window, c.credit-waited+earned)
	}
}

// left is how long the next read may wait for the client; 0 or less when its credit is spent.
// It is the client timeout when the rate is off.
func (c *bodyClock) left() time.Duration {
	if c.rate <= 0 {
		return c.window
	}
	return c.credit
}

// clientReader is what the client's read buffer reads through. While a body is copied, it
// counts each read's wait and bytes on the body's clock.
type clientReader struct {
	c     net.Conn
	clock *bodyClock // nil but while a body is copied, by the copy's goroutine
}

func (r *clientReader) Read(p []byte) (int, error) {
	if r.clock == nil {
		return r.c.Read(p)
	}
	start := time.Now()
	n, err := r.c.Read(p)
	r.clock.read(time.Since(start), n)
	return n, err
}
