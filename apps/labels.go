package apps

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/tenderinit/tender/procfile"
)

// lineLabel says which process a line of output came from, when more than one app process
// may write (pool mode, a Procfile): before the line as foreman writes it, `web.0 | ...`,
// padded so that the bars line up across the pool's types; or, with TENDER_LOG_FORMAT=json,
// the line as one JSON object, {"time","type","id","stream","line"}, for log shippers that
// parse every line. nil leaves lines as they were written.
type lineLabel struct {
	typ    string
	id     int
	stream string // stdout or stderr
	prefix []byte // for text: "web.0  | "
	json   bool
	buf    bytes.Buffer // the labelled line, reused: one copyLines goroutine owns a label
	enc    *json.Encoder
}

// labelWidth is the width of the widest label of types, web.0 to web.N-1 for each, so that
// the bars line up as they do in foreman's output. The release phase's lines come before any
// other's: its label does not widen the others. Scaling a type past its count makes longer
// labels, which are not cut.
func labelWidth(types []TypeConfig) int {
	width := 0
	for _, t := range types {
		if t.Name != procfile.Release {
			width = max(width, len(t.Name)+1+len(strconv.Itoa(max(t.Count-1, 0))))
		}
	}
	return width
}

func newLineLabel(typ string, id int, stream string, width int, asJSON bool) *lineLabel {
	l := &lineLabel{typ: typ, id: id, stream: stream, json: asJSON}
	if asJSON {
		l.enc = json.NewEncoder(&l.buf)
		l.enc.SetEscapeHTML(false) // the line as it was, <, > and & included
		return l
	}
	name := typ + "." + strconv.Itoa(id)
	l.prefix = []byte(name + strings.Repeat(" ", max(width-len(name), 0)) + " | ")
	return l
}

// outputRecord is a line of output as JSON.
type outputRecord struct {
	Time   string `json:"time"`
	Type   string `json:"type"`
	ID     int    `json:"id"`
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

// apply returns line (which ends in a newline) labelled; the result is valid until the next
// call.
func (l *lineLabel) apply(line []byte) []byte {
	l.buf.Reset()
	if !l.json {
		l.buf.Write(l.prefix)
		l.buf.Write(line)
		return l.buf.Bytes()
	}
	// hclog's JSON time, so that tender's own lines and its apps' sort together. Encode ends
	// the object with a newline, and turns bytes that are not UTF-8 into U+FFFD.
	_ = l.enc.Encode(outputRecord{Time: time.Now().Format("2006-01-02T15:04:05.000000Z07:00"),
		Type: l.typ, ID: l.id, Stream: l.stream, Line: string(line[:len(line)-1])})
	return l.buf.Bytes()
}
