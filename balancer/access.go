package balancer

import (
	"net"
	"time"
)

// The access log (TENDER_ACCESS_LOG): a line per request in http mode, per connection in tcp
// mode, through the logger tender's own lines go through, in its format (text or JSON). Off,
// it costs a comparison with nil per session.

// logRequest writes the line of the request hc has just finished: what was asked (when the
// head could be read), its status, the bytes sent to the client (head included), how long it
// took from its first byte, and the worker that answered (none when tender answered itself).
// A head that could not be read whole has no method or path; one whose request line is
// malformed, no path.
func (hc *httpConn) logRequest(d time.Duration) {
	log := hc.b.cfg.AccessLog
	if log == nil || hc.status == 0 {
		return
	}
	args := make([]any, 0, 14)
	if hc.req.method != nil {
		args = append(args, "method", string(hc.req.method))
	}
	if hc.req.path != nil {
		args = append(args, "path", string(hc.req.path))
	}
	args = append(args, "status", hc.status, "bytes", hc.cw.written-hc.sentBefore, "duration_ms", millis(d))
	if hc.worker != nil {
		args = append(args, "worker", hc.worker.ID)
	}
	if hc.ip != "" {
		args = append(args, "client", hc.ip)
	}
	log.Info("request", args...)
}

// logConnection writes the line of a tcp session: the client, its worker (nil when it got
// none, and then why), the bytes copied each way and how long it lasted from its accept.
func (b *Balancer) logConnection(client net.Conn, be *Backend, toWorker, toClient int64, d time.Duration, refused error) {
	log := b.cfg.AccessLog
	if log == nil {
		return
	}
	args := make([]any, 0, 12)
	if addr := client.RemoteAddr(); addr != nil && addr.String() != "" {
		args = append(args, "client", addr.String())
	}
	if be != nil {
		args = append(args, "worker", be.ID)
	}
	args = append(args, "bytes_in", toWorker, "bytes_out", toClient, "duration_ms", millis(d))
	if refused != nil {
		args = append(args, "refused", refused.Error())
	}
	log.Info("connection", args...)
}

// millis is d in milliseconds, to the microsecond: a number in JSON as in text.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
