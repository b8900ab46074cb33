package balancer

import (
	"io"
	"strconv"
	"sync/atomic"
	"time"
)

// bucketBounds are the upper bounds of a histogram's buckets, as Prometheus's le labels: from
// a millisecond, where a small answer of a worker on the same machine lies, to 30 s, past any
// answer a user waits for.
var bucketBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second,
}

// histogram counts durations in fixed buckets with atomic counters, so that sessions on every
// CPU count theirs without a lock. (The metrics library tender pins, VictoriaMetrics/metrics
// v1.18.1, has histograms of its own buckets only, which Prometheus's histogram_quantile cannot
// read.) A scrape that runs beside an observation may see its bucket and not yet its sum.
type histogram struct {
	counts [len(bucketBounds) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64                         // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(bucketBounds) && d > bucketBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// writePrometheus writes the histogram in the Prometheus text format, with its HELP and TYPE
// lines; labels is the label set without braces.
func (h *histogram) writePrometheus(w io.Writer, name, help, labels string) {
	b := make([]byte, 0, 1024)
	b = append(b, "# HELP "+name+" "+help+"\n# TYPE "+name+" histogram\n"...)
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
		le := "+Inf"
		if i < len(bucketBounds) {
			le = strconv.FormatFloat(bucketBounds[i].Seconds(), 'g', -1, 64)
		}
		b = append(b, name+"_bucket{"+labels+`,le="`+le+`"} `...)
		b = strconv.AppendUint(b, total, 10)
		b = append(b, '\n')
	}
	b = append(b, name+"_sum{"+labels+"} "...)
	b = strconv.AppendFloat(b, time.Duration(h.sum.Load()).Seconds(), 'g', -1, 64)
	b = append(b, '\n')
	b = append(b, name+"_count{"+labels+"} "...)
	b = strconv.AppendUint(b, total, 10)
	b = append(b, '\n')
	_, _ = w.Write(b)
}

// webType is the label of the balanced process type: of a Procfile's types, only web is
// behind the front socket.
const webType = `type="web"`

// timings are the balancer's histograms: how long sessions take, from their first byte to
// their end, and how long they wait for a worker.
type timings struct {
	sessions, queueWait histogram
}

// WritePrometheus writes the balancer's histograms for /metrics. A session is a request in http
// mode and a connection in tcp mode, and the first histogram is named for what it counts.
func (b *Balancer) WritePrometheus(w io.Writer) {
	if b.cfg.HTTP {
		b.timings.sessions.writePrometheus(w, "tender_request_duration_seconds",
			"Requests from their first byte to the end of their response.", webType)
	} else {
		b.timings.sessions.writePrometheus(w, "tender_connection_duration_seconds",
			"Connections from their accept to their close.", webType)
	}
	b.timings.queueWait.writePrometheus(w, "tender_queue_wait_seconds",
		"Time sessions waited for a worker, in the queue or for a retry.", webType)
}
