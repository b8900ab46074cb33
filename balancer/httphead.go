package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"time"
)

// Bounds of a head, past which a request is refused (431) and a response is malformed (502).
// Each bounds the work of one head too: every header line is looked up among the names that
// Connection lists.
const (
	// maxHead bounds the bytes of a head as received, line ends and the empty lines allowed
	// before a request included.
	maxHead = 32 << 10
	// maxFields bounds the header lines of a head, as Apache's LimitRequestFields (100) and
	// HAProxy's tune.http.maxhdr (101, with the request line) do.
	maxFields = 100
	// maxConnOptions bounds the options that Connection headers list, all together: a client
	// has a use for a few (close, keep-alive, Upgrade, TE and the names of a few headers).
	maxConnOptions = 32
)

// httpError is a request the balancer answers itself.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return strconv.Itoa(e.code) + " " + e.msg }

var (
	errHeadTooLarge  = &httpError{431, "Request Header Fields Too Large"}
	errTooManyFields = &httpError{431, "Request Header Fields Too Large: more than " + strconv.Itoa(maxFields) + " header lines"}
	errConnOptions   = &httpError{431, "Request Header Fields Too Large: more than " + strconv.Itoa(maxConnOptions) + " Connection options"}
	errURITooLong    = &httpError{414, "URI Too Long"}
	errBadRequest    = &httpError{400, "Bad Request"}
	errBadTarget     = &httpError{400, "Bad Request: a target neither /path, nor http:// or https:// and a host"}
	errBadVersion    = &httpError{505, "HTTP Version Not Supported"}
	errBadTransfer   = &httpError{501, "Not Implemented: unsupported Transfer-Encoding"}
	errConnect       = &httpError{501, "Not Implemented: CONNECT"}
	errBadLength     = &httpError{400, "Bad Request: conflicting Content-Length"}
	errSmuggling     = &httpError{400, "Bad Request: both Transfer-Encoding and Content-Length"}
	errMissingHost   = &httpError{400, "Bad Request: no Host header"}
	errBadHost       = &httpError{400, "Bad Request: malformed or repeated Host header"}
	errBadHeaderName = &httpError{400, "Bad Request: malformed header"}
	errBadHeaderByte = &httpError{400, "Bad Request: control character in a header"}
)

// head is a parsed HTTP/1.x message head, request or response. Its slices point into buf,
// which is reused from one message to the next.
type head struct {
	buf   []byte
	first []byte   // the request or status line
	lines [][]byte // header lines, without their line ends

	// path is a request's target in origin form (or "*"); authority is the host of a target in
	// absolute form, nil for other forms. A path of an absolute form may be empty, or start
	// with its query.
	path, authority []byte

	minor         int // HTTP/1.<minor>
	status        int // responses only
	method        []byte
	contentLength int64 // -1 when there is none
	chunked       bool
	connClose     bool
	connKeepAlive bool
	connUpgrade   bool
	transfer      bool // a Transfer-Encoding header is present
	// faultyFraming: a response with Transfer-Encoding and Content-Length, or Transfer-Encoding
	// in HTTP/1.0; read by Transfer-Encoding, but its connection is not used again (RFC 9112 6.1, 6.3).
	faultyFraming bool
	upgrade       bool // an Upgrade header is present
	expect100     bool
	host          bool
	hasXFP        bool
	requestStart  bool   // an X-Request-Start header is present
	xff           []byte // the X-Forwarded-For values already present, joined
	// connNamed holds the other header names listed in Connection, in lower case: hop-by-hop
	// too. A set, so that each header line of the head is one look-up, however many there are.
	connNamed map[string]struct{}
	lower     []byte // a name in lower case, to look it up in connNamed
}

// readHead reads a head from br into h.buf: lines up to the empty line. A line longer than
// br's buffer, or a head past maxHead bytes, is errHeadTooLarge (errURITooLong for the first
// line), more than maxFields header lines errTooManyFields. A line may end in CRLF or a bare LF
// (RFC 9112 2.2); tender passes it on ending in CRLF.
func (h *head) readHead(br *bufio.Reader) error {
	h.buf = h.buf[:0]
	h.lines = h.lines[:0]
	h.method, h.path, h.authority = nil, nil, nil // until parsed afresh: the access log reads them
	starts := [64]int{}
	offsets := starts[:0]
	received := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(h.buf) == 0 {
				return errURITooLong
			}
			return errHeadTooLarge
		}
		if err != nil {
			var ne net.Error
			if (len(h.buf) > 0 || len(line) > 0) && !(errors.As(err, &ne) && ne.Timeout()) {
				return errBadRequest // cut short
			}
			return err
		}
		if received += len(line); received > maxHead {
			return errHeadTooLarge
		}
		line = trimEOL(line)
		if len(line) == 0 {
			if len(h.buf) == 0 {
				continue // stray line ends between requests are allowed (RFC 9112 2.2)
			}
			break
		}
		if len(offsets) > 2*maxFields { // the first line and maxFields header lines are in
			return errTooManyFields
		}
		offsets = append(offsets, len(h.buf))
		h.buf = append(h.buf, line...)
		offsets = append(offsets, len(h.buf))
	}
	h.first = h.buf[offsets[0]:offsets[1]]
	for i := 2; i < len(offsets); i += 2 {
		h.lines = append(h.lines, h.buf[offsets[i]:offsets[i+1]])
	}
	return nil
}

func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// parseRequest checks and parses a request head read by readHead.
func (h *head) parseRequest() error {
	// method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(h.first, ' ')
	sp2 := bytes.LastIndexByte(h.first, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 || !isToken(h.first[:sp1]) || !isTarget(h.first[sp1+1:sp2]) {
		return errBadRequest
	}
	h.method = h.first[:sp1]
	minor, err := parseVersion(h.first[sp2+1:])
	if err != nil {
		return err
	}
	h.minor = minor
	if string(h.method) == "CONNECT" {
		return errConnect // a tunnel to anywhere: nothing a worker behind tender should be asked for
	}
	if err := h.parseTarget(h.first[sp1+1 : sp2]); err != nil {
		return err
	}
	if err := h.parseHeaders(true); err != nil {
		return err
	}
	if h.minor >= 1 && !h.host {
		return errMissingHost
	}
	return nil
}

// parseTarget reads a request-target in origin form (/path?query), in asterisk form (OPTIONS *)
// or in absolute form (http://host/path?query, RFC 9112 3.2). An absolute form goes to the
// worker in origin form with its host as Host (3.2.2): passed on as it came, its Host header
// said one host and its target another, and a worker would pick either.
func (h *head) parseTarget(target []byte) error {
	h.path, h.authority = target, nil
	switch {
	case target[0] == '/':
		return nil
	case string(target) == "*" && string(h.method) == "OPTIONS":
		return nil
	}
	rest, ok := cutSchemePrefix(target, "http://")
	if !ok {
		rest, ok = cutSchemePrefix(target, "https://")
	}
	if !ok {
		return errBadTarget
	}
	end := bytes.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	// No user information: the worker has no use for it, and a Host cannot carry it.
	authority := rest[:end]
	if len(authority) == 0 || bytes.IndexByte(authority, '@') >= 0 || !isHost(authority) {
		return errBadTarget
	}
	h.authority, h.path = authority, rest[end:]
	return nil
}

// parseResponse parses a response head read by readHead. It refuses what parseRequest
// refuses in a request's headers: tender passes on no head that a client could read two ways.
func (h *head) parseResponse() error {
	// HTTP-version SP status-code SP reason
	if len(h.first) < 12 || h.first[8] != ' ' {
		return errBadRequest
	}
	minor, err := parseVersion(h.first[:8])
	if err != nil {
		return err
	}
	code, err := strconv.Atoi(string(h.first[9:12]))
	if err != nil || code < 100 || code > 999 || (len(h.first) > 12 && h.first[12] != ' ') {
		return errBadRequest
	}
	h.minor, h.status = minor, code
	return h.parseHeaders(false)
}

// parseVersion reads an HTTP-version, "HTTP/" DIGIT "." DIGIT. A major version other than 1 is
// errBadVersion (505); what is not a version at all is errBadRequest.
func parseVersion(v []byte) (minor int, err error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return 0, errBadRequest
	}
	if v[5] != '1' {
		return 0, errBadVersion
	}
	return int(v[7] - '0'), nil
}

// parseHeaders reads the framing and connection headers, refusing what could make tender and
// the other side read a message differently (request smuggling, response splitting): obs-fold,
// whitespace before the colon, control characters (a bare CR, NUL), conflicting lengths, and
// in a request a repeated Host, both Transfer-Encoding and Content-Length, or a
// Transfer-Encoding other than chunked. In a response, Transfer-Encoding wins over
// Content-Length (RFC 9112 6.3) and one that does not end in chunked runs until the close.
func (h *head) parseHeaders(request bool) error {
	h.contentLength = -1
	h.chunked, h.transfer, h.connClose, h.connKeepAlive, h.connUpgrade = false, false, false, false, false
	h.upgrade, h.expect100, h.host, h.hasXFP, h.requestStart = false, false, false, false, false
	h.xff = h.xff[:0]
	clear(h.connNamed)
	options := 0
	for _, line := range h.lines {
		if line[0] == ' ' || line[0] == '\t' {
			return errBadHeaderName // obs-fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return errBadHeaderName
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !isFieldValue(value) {
			return errBadHeaderByte
		}
		switch {
		case equalFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok || (h.contentLength >= 0 && n != h.contentLength) {
				return errBadLength
			}
			h.contentLength = n
		case equalFold(name, "Transfer-Encoding"):
			if request && (h.transfer || !equalFold(value, "chunked")) {
				return errBadTransfer // chunked is the one coding a worker can be relied on to know
			}
			h.transfer = true
			h.chunked = lastToken(value, "chunked")
		case equalFold(name, "Connection"):
			forEachToken(value, func(tok []byte) {
				if options++; options > maxConnOptions {
					return // refused below; nothing more to keep
				}
				switch {
				case equalFold(tok, "close"):
					h.connClose = true
				case equalFold(tok, "keep-alive"):
					h.connKeepAlive = true
				case equalFold(tok, "upgrade"):
					h.connUpgrade = true
				case equalFold(tok, "Content-Length"), equalFold(tok, "Transfer-Encoding"), equalFold(tok, "Host"):
					// Never dropped: the next hop needs them to read the message as tender did.
				default:
					if h.connNamed == nil {
						h.connNamed = map[string]struct{}{}
					}
					h.lower = appendLower(h.lower[:0], tok)
					h.connNamed[string(h.lower)] = struct{}{}
				}
			})
			if options > maxConnOptions {
				return errConnOptions
			}
		case equalFold(name, "Upgrade"):
			h.upgrade = true
		case equalFold(name, "Host"):
			if request && (h.host || !isHost(value)) {
				return errBadHost
			}
			h.host = true
		case equalFold(name, "Expect"):
			h.expect100 = equalFold(value, "100-continue")
		case equalFold(name, "X-Forwarded-For"):
			if len(h.xff) > 0 {
				h.xff = append(h.xff, ", "...)
			}
			h.xff = append(h.xff, value...)
		case equalFold(name, "X-Forwarded-Proto"):
			h.hasXFP = true
		case equalFold(name, "X-Request-Start"):
			h.requestStart = true
		}
	}
	h.faultyFraming = false
	if h.transfer {
		if request && (h.contentLength >= 0 || h.minor == 0) {
			return errSmuggling
		}
		h.faultyFraming = h.contentLength >= 0 || h.minor == 0
		h.contentLength = -1 // Transfer-Encoding wins (RFC 9112 6.3)
	}
	return nil
}

// isUpgrade reports whether the request asks to switch protocols (WebSocket).
func (h *head) isUpgrade() bool { return h.upgrade && h.connUpgrade }

// wantsClose reports whether the client asked to close after this exchange: HTTP/1.1 keeps
// the connection unless told to close, HTTP/1.0 closes unless told to keep it.
func (h *head) wantsClose() bool {
	if h.minor == 0 {
		return !h.connKeepAlive || h.connClose
	}
	return h.connClose
}

// hopByHop reports whether a header line is about this connection only, to be dropped when the
// message is passed on.
func (h *head) hopByHop(name []byte, upgrade bool) bool {
	switch {
	case equalFold(name, "Connection"), equalFold(name, "Keep-Alive"), equalFold(name, "Proxy-Connection"),
		equalFold(name, "TE"):
		return true
	case equalFold(name, "Upgrade"):
		return !upgrade
	}
	if len(h.connNamed) == 0 {
		return false
	}
	h.lower = appendLower(h.lower[:0], name)
	_, named := h.connNamed[string(h.lower)]
	return named
}

// appendRequest writes the request head as it goes to the worker: the target in origin form
// (the host of an absolute form as the Host header), in HTTP/1.0 or 1.1 (the version tender
// speaks: RFC 9110 6.2), hop-by-hop headers dropped, names with '_' dropped (unless
// keepUnderscores, and then only some), X-Forwarded-For and -Proto added, X-Request-Start
// added unless a proxy before tender set it, and a Connection header of tender's own.
//
// X-Request-Start: t=<microseconds since the epoch> is when the request's first byte came, as
// nginx and Heroku's router send it: APMs (New Relic, Datadog, Scout) take the time from it to
// the app's own start as the request's queue time, which then includes tender's queue. One set
// by a proxy before tender is kept: it came earlier, and holds that proxy's queue too.
func (h *head) appendRequest(out []byte, clientIP string, keepUnderscores bool, firstByte time.Time) []byte {
	upgrade := h.isUpgrade()
	out = append(out, h.method...)
	out = append(out, ' ')
	if h.authority != nil && (len(h.path) == 0 || h.path[0] != '/') {
		out = append(out, '/')
	}
	out = append(out, h.path...)
	out = append(out, " HTTP/1."...)
	out = append(out, '0'+byte(min(h.minor, 1)))
	out = append(out, "\r\n"...)
	if h.authority != nil {
		out = append(out, "Host: "...)
		out = append(out, h.authority...)
		out = append(out, "\r\n"...)
	}
	for _, line := range h.lines {
		colon := bytes.IndexByte(line, ':')
		name := line[:colon]
		if h.hopByHop(name, upgrade) || equalFold(name, "X-Forwarded-For") || underscored(name, keepUnderscores) ||
			h.authority != nil && equalFold(name, "Host") {
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	if len(h.xff) > 0 || clientIP != "" {
		out = append(out, "X-Forwarded-For: "...)
		out = append(out, h.xff...)
		if len(h.xff) > 0 && clientIP != "" {
			out = append(out, ", "...)
		}
		out = append(out, clientIP...)
		out = append(out, "\r\n"...)
	}
	if !h.hasXFP {
		out = append(out, "X-Forwarded-Proto: http\r\n"...)
	}
	if !h.requestStart {
		out = append(out, "X-Request-Start: t="...)
		out = strconv.AppendInt(out, firstByte.UnixMicro(), 10)
		out = append(out, "\r\n"...)
	}
	switch {
	case upgrade:
		out = append(out, "Connection: Upgrade\r\n"...)
	case h.minor == 0:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	return append(out, "\r\n"...)
}

// underscored reports whether a request header's name has a '_' that must not reach the
// worker. CGI, WSGI and PHP read '_' and '-' alike (both become HTTP_..._...), so that
// Transfer_Encoding would frame the request for the worker otherwise than for tender, and
// X_Forwarded_For would pass for tender's own header: such names are dropped, as nginx does
// (underscores_in_headers off). keepUnderscores (TENDER_UNDERSCORES_IN_HEADERS) keeps the
// others, never those that read as a header tender reads or writes itself.
func underscored(name []byte, keepUnderscores bool) bool {
	if bytes.IndexByte(name, '_') < 0 {
		return false
	}
	if !keepUnderscores {
		return true
	}
	dashed := bytes.ReplaceAll(name, []byte("_"), []byte("-"))
	for _, own := range [...]string{"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Proxy-Connection", "Upgrade", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Start"} {
		if equalFold(dashed, own) {
			return true
		}
	}
	return false
}

// appendResponse writes the response head as it goes to the client, in tender's own HTTP
// version (RFC 9110 6.2): the worker's hop-by-hop headers dropped (but for a 101, which hands
// the connection over), a Content-Length that Transfer-Encoding overrides dropped, and tender's
// own Connection header for the client.
func (h *head) appendResponse(out []byte, closeClient, keepAlive10 bool) []byte {
	out = append(out, "HTTP/1.1"...)
	out = append(out, h.first[8:]...)
	out = append(out, "\r\n"...)
	switching := h.status == 101
	for _, line := range h.lines {
		name := line[:bytes.IndexByte(line, ':')]
		if !switching && h.hopByHop(name, false) || h.transfer && equalFold(name, "Content-Length") {
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	switch {
	case switching:
	case closeClient:
		out = append(out, "Connection: close\r\n"...)
	case keepAlive10:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	return append(out, "\r\n"...)
}

// responseHasBody reports whether a response to method with this status carries a body.
func responseHasBody(method []byte, status int) bool {
	return status >= 200 && status != 204 && status != 304 && string(method) != "HEAD"
}
