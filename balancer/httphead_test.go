package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func parseReq(raw string) (*head, error) {
	var h head
	if err := h.readHead(bufio.NewReaderSize(strings.NewReader(raw), readBuf)); err != nil {
		return &h, err
	}
	return &h, h.parseRequest()
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raw   string
		err   error
		check func(*head) bool
	}{
		{"simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", nil,
			func(h *head) bool {
				return h.contentLength == -1 && !h.chunked && !h.wantsClose() && string(h.method) == "GET"
			}},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", nil, func(h *head) bool { return h.host }},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", nil, func(h *head) bool { return true }},
		{"content length", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", nil, func(h *head) bool { return h.contentLength == 5 }},
		{"same length twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", nil, func(h *head) bool { return h.contentLength == 5 }},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n", nil, func(h *head) bool { return h.chunked }},
		{"HTTP/1.2 as 1.1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", nil, func(h *head) bool { return h.minor == 2 && !h.wantsClose() }},
		{"absolute form", "GET hTTp://other.example:8080/x?q HTTP/1.1\r\nHost: a\r\n\r\n", nil,
			func(h *head) bool { return string(h.authority) == "other.example:8080" && string(h.path) == "/x?q" }},
		{"absolute form, https, no path", "GET https://[::1] HTTP/1.1\r\nHost: a\r\n\r\n", nil,
			func(h *head) bool { return string(h.authority) == "[::1]" && len(h.path) == 0 }},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", nil, func(h *head) bool { return h.authority == nil && string(h.path) == "*" }},
		{"host with port, IPv6", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", nil, func(h *head) bool { return h.host }},
		{"8-bit header value", "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n", nil, func(h *head) bool { return true }},
		{"close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", nil, func(h *head) bool { return h.wantsClose() }},
		{"1.0 closes", "GET / HTTP/1.0\r\n\r\n", nil, func(h *head) bool { return h.wantsClose() && h.minor == 0 }},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", nil, func(h *head) bool { return !h.wantsClose() }},
		{"websocket", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", nil, func(h *head) bool { return h.isUpgrade() }},
		{"expect", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", nil, func(h *head) bool { return h.expect100 }},

		{"no host in 1.1", "GET / HTTP/1.1\r\n\r\n", errMissingHost, nil},
		{"no host in 1.2", "GET / HTTP/1.2\r\n\r\n", errMissingHost, nil},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", errBadHost, nil},
		{"malformed host", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", errBadHost, nil},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\n", errBadVersion, nil},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", errBadRequest, nil},
		{"not a version", "GET / FOO/1.1\r\nHost: a\r\n\r\n", errBadRequest, nil},
		{"CONNECT", "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", errConnect, nil},
		{"authority form", "GET evil:443 HTTP/1.1\r\nHost: a\r\n\r\n", errBadTarget, nil},
		{"relative target", "GET x/y HTTP/1.1\r\nHost: a\r\n\r\n", errBadTarget, nil},
		{"GET *", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", errBadTarget, nil},
		{"another scheme", "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", errBadTarget, nil},
		{"no host in the target", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", errBadTarget, nil},
		{"user information", "GET http://user:pw@a/x HTTP/1.1\r\nHost: a\r\n\r\n", errBadTarget, nil},
		{"a fragment for a host", "GET http://a#x HTTP/1.1\r\nHost: a\r\n\r\n", errBadTarget, nil},
		{"absolute form, no Host in 1.1", "GET http://a/ HTTP/1.1\r\n\r\n", errMissingHost, nil},
		{"control character in target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", errBadRequest, nil},
		{"8-bit target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", errBadRequest, nil},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", errBadHeaderByte, nil},
		{"bare CR in a value", "POST / HTTP/1.1\r\nHost: a\r\nX-A: a\rTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", errBadHeaderByte, nil},
		{"CR before CRLF", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\r\n\r\n", errBadHeaderByte, nil},
		{"vertical tab around chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", errBadHeaderByte, nil},
		{"form feed after a length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\x0c\r\n\r\n", errBadHeaderByte, nil},
		{"NEL after chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xc2\x85\r\n\r\n", errBadTransfer, nil},
		{"HTTP/0.9", "GET /\r\n\r\n", errBadRequest, nil},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", errBadRequest, nil},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", errBadRequest, nil},
		{"bad method", "G(ET / HTTP/1.1\r\nHost: a\r\n\r\n", errBadRequest, nil},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", errBadHeaderName, nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", errBadHeaderName, nil},
		{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", errBadHeaderName, nil},
		{"conflicting lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", errBadLength, nil},
		{"negative length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", errBadLength, nil},
		{"length with sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", errBadLength, nil},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", errSmuggling, nil},
		{"TE not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", errBadTransfer, nil},
		{"TE other than chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", errBadTransfer, nil},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", errBadTransfer, nil},
		{"two TE headers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n", errBadTransfer, nil},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", errSmuggling, nil},
		{"header line too long", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", readBuf) + "\r\n\r\n", errHeadTooLarge, nil},
		{"request line too long", "GET /" + strings.Repeat("a", readBuf) + " HTTP/1.1\r\nHost: a\r\n\r\n", errURITooLong, nil},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 40) + "\r\n", errHeadTooLarge, nil},
		{"cut short", "GET / HTTP/1.1\r\nHost: a\r\n", errBadRequest, nil},

		// Bounds of the work one head costs: issue 15's head took 0.3-0.5 s of CPU in hopByHop.
		{"issue 15's head", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("Connection: "+strings.Repeat("x,", 3899)+"x\r\n", 2) +
			strings.Repeat("y:\n", 8000) + "\r\n", errTooManyFields, nil},
		{"100 header lines", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", 99) + "\r\n", nil,
			func(h *head) bool { return len(h.lines) == 100 }},
		{"101 header lines", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", 100) + "\r\n", errTooManyFields, nil},
		{"32 Connection options", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, " + list(31, "x") + "\r\n\r\n", nil,
			func(h *head) bool { return h.connClose && len(h.connNamed) == 31 }},
		{"33 Connection options", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, " + list(32, "x") + "\r\n\r\n", errConnOptions, nil},
		{"33 options in two Connection headers", "GET / HTTP/1.1\r\nHost: a\r\nConnection: " + list(20, "x") +
			"\r\nConnection: " + list(13, "y") + "\r\n\r\n", errConnOptions, nil},
		{"a head whose line ends take it past 32 KiB", headOf(maxHead+1, 0), errHeadTooLarge, nil},
		{"empty lines before a head count", headOf(maxHead+1, 1000), errHeadTooLarge, nil},
		{"a head of 32 KiB received", headOf(maxHead, 1000), nil, func(h *head) bool { return h.host }},
	} {
		h, err := parseReq(tc.raw)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: got error %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && !tc.check(h) {
			t.Errorf("%s: parsed %+v", tc.name, h)
		}
	}
}

// list is n header names made of prefix, comma-separated: x0, x1, ...
func list(n int, prefix string) string {
	names := make([]string, n)
	for i := range names {
		names[i] = prefix + strconv.Itoa(i)
	}
	return strings.Join(names, ", ")
}

// headOf is a request head of exactly size bytes as sent, after empty lines before it, in 100
// header lines: so many line ends that the lines alone, without them, fit in maxHead.
func headOf(size, empty int) string {
	head := strings.Repeat("\r\n", empty) + "GET / HTTP/1.1\r\nHost: a\r\n"
	const fields = maxFields - 1
	per := (size - len(head) - 2) / fields
	for i := range fields {
		pad := per - len("X-00: \r\n")
		if i == 0 {
			pad += (size - len(head) - 2) % fields
		}
		head += fmt.Sprintf("X-%02d: %s\r\n", i, strings.Repeat("a", pad))
	}
	head += "\r\n"
	if len(head) != size || len(head)-2*(maxFields+1+empty) > maxHead {
		panic(fmt.Sprintf("headOf(%d, %d) made %d bytes", size, empty, len(head)))
	}
	return head
}

func TestRequestRewrite(t *testing.T) {
	h, err := parseReq("GET /p?q HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop, x-OTHER\r\nX-Hop: 1\r\nKeep-Alive: 300\r\nX-Other: 2\r\n" +
		"X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	got := string(h.appendRequest(nil, "127.0.0.1", false, firstByte))
	want := "GET /p?q HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\nX-Forwarded-Proto: http\r\n" + xrs + "\r\n"
	if got != want {
		t.Errorf("rewritten request:\n%q\nwant\n%q", got, want)
	}

	h, _ = parseReq("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Forwarded-Proto: https\r\n\r\n")
	got = string(h.appendRequest(nil, "", false, firstByte))
	want = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nX-Forwarded-Proto: https\r\n" + xrs + "Connection: Upgrade\r\n\r\n"
	if got != want {
		t.Errorf("rewritten upgrade:\n%q\nwant\n%q", got, want)
	}

	// A Connection header that names a framing header does not make tender drop it: the worker
	// would read the body as the next request (request smuggling).
	for raw, want := range map[string]string{
		"POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Host\r\nContent-Length: 3\r\n\r\n":                       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-Forwarded-Proto: http\r\n" + xrs + "\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Forwarded-Proto: http\r\n" + xrs + "\r\n",
	} {
		h, err := parseReq(raw)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got := string(h.appendRequest(nil, "", false, firstByte)); got != want {
			t.Errorf("rewritten request:\n%q\nwant\n%q", got, want)
		}
	}

	// Names with '_' do not reach the worker, which may read them as '-' (CGI, WSGI): by default
	// none, and when kept, not those that would read as framing or as tender's own headers.
	raw := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer_Encoding: chunked\r\ncontent_length: 5\r\n" +
		"X_Forwarded_For: 10.9.9.9\r\nX-Forwarded_Proto: https\r\nX_Request_Start: t=1\r\nConnection_: x\r\nX_Custom: 1\r\n\r\n"
	for keep, want := range map[bool]string{
		false: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n" + xrs + "\r\n",
		true:  "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection_: x\r\nX_Custom: 1\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n" + xrs + "\r\n",
	} {
		h, err := parseReq(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(h.appendRequest(nil, "127.0.0.1", keep, firstByte)); got != want {
			t.Errorf("underscores kept %v:\n%q\nwant\n%q", keep, got, want)
		}
	}

	// An absolute form goes out in origin form, its host as the one Host (RFC 9112 3.2.2), and
	// a version above 1.1 as 1.1, the version tender speaks.
	for raw, want := range map[string]string{
		"GET http://other.example/x?q HTTP/1.1\r\nX-A: 1\r\nHost: a\r\n\r\n": "GET /x?q HTTP/1.1\r\nHost: other.example\r\nX-A: 1\r\n",
		"GET HTTPS://b:81?q HTTP/1.2\r\nHost: a\r\n\r\n":                     "GET /?q HTTP/1.1\r\nHost: b:81\r\n",
		"HEAD http://b HTTP/1.0\r\n\r\n":                                     "HEAD / HTTP/1.0\r\nHost: b\r\n",
		"OPTIONS * HTTP/1.7\r\nHost: a\r\n\r\n":                              "OPTIONS * HTTP/1.1\r\nHost: a\r\n",
	} {
		h, err := parseReq(raw)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got := string(h.appendRequest(nil, "", false, firstByte)); !strings.HasPrefix(got, want) || strings.Count(got, "Host:") != 1 {
			t.Errorf("%q went out as\n%q\nwant it to start\n%q", raw, got, want)
		}
	}

	h, _ = parseReq("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if got := string(h.appendRequest(nil, "::1", false, firstByte)); !strings.HasSuffix(got, "X-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n"+xrs+"Connection: keep-alive\r\n\r\n") {
		t.Errorf("HTTP/1.0 keep-alive request: %q", got)
	}

	// A proxy before tender set X-Request-Start: its time is earlier, and holds its own queue.
	h, _ = parseReq("GET / HTTP/1.1\r\nHost: a\r\nx-request-start: t=1600000000000000\r\n\r\n")
	if got := string(h.appendRequest(nil, "", false, firstByte)); got != "GET / HTTP/1.1\r\nHost: a\r\nx-request-start: t=1600000000000000\r\nX-Forwarded-Proto: http\r\n\r\n" {
		t.Errorf("a request with its own X-Request-Start went out as %q", got)
	}
}

// firstByte is when the requests of these tests came, and xrs the header that says so.
var firstByte = time.UnixMicro(1700000000123456)

const xrs = "X-Request-Start: t=1700000000123456\r\n"

func TestResponseParseAndRewrite(t *testing.T) {
	var h head
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: b\r\n\r\n"
	if err := h.readHead(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if err := h.parseResponse(); err != nil || h.status != 200 || h.contentLength != 3 || h.connClose {
		t.Fatalf("parsed %+v, %v", h, err)
	}
	if got := string(h.appendResponse(nil, true, false)); got != "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\nConnection: close\r\n\r\n" {
		t.Errorf("response to a closing client: %q", got)
	}
	if got := string(h.appendResponse(nil, false, true)); !strings.HasSuffix(got, "X-A: b\r\nConnection: keep-alive\r\n\r\n") {
		t.Errorf("response to an HTTP/1.0 keep-alive client: %q", got)
	}
	for raw, status := range map[string]int{"HTTP/1.1 204\r\n\r\n": 204, "HTTP/1.0 404 Not Found\r\n\r\n": 404} {
		h.readHead(bufio.NewReader(strings.NewReader(raw)))
		if err := h.parseResponse(); err != nil || h.status != status {
			t.Errorf("%q: %d %v", raw, h.status, err)
		}
	}
	// Out in tender's own version; a Content-Length beside Transfer-Encoding, or one named in
	// Connection, is not what the worker's framing is.
	for raw, want := range map[string]string{
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n":                                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\n":  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
	} {
		h.readHead(bufio.NewReader(strings.NewReader(raw)))
		if err := h.parseResponse(); err != nil {
			t.Errorf("%q: %v", raw, err)
		} else if got := string(h.appendResponse(nil, false, false)); got != want {
			t.Errorf("%q passed on as %q, want %q", raw, got, want)
		}
	}
	for _, raw := range []string{
		"HTTP/1.1 2000 OK\r\n\r\n", "HTTX/1.1 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",      // a client may read it, tender would not
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n",            // obs-fold
		"HTTP/1.1 200 OK\r\nX-A: 1\rSet-Cookie: a=b\r\n\r\n", // bare CR
		"HTTP/1.1 200 OK\r\nX-A: \x00\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: 1\r\n", maxFields+1) + "\r\n",
		"HTTP/1.1 200 OK\r\nConnection: " + list(maxConnOptions+1, "x") + "\r\n\r\n",
	} {
		err := h.readHead(bufio.NewReader(strings.NewReader(raw)))
		if err == nil {
			err = h.parseResponse()
		}
		if err == nil {
			t.Errorf("%.80q accepted", raw)
		}
	}
	if responseHasBody([]byte("HEAD"), 200) || responseHasBody([]byte("GET"), 304) || !responseHasBody([]byte("GET"), 200) {
		t.Error("responseHasBody")
	}
}

// copyChunked passes a chunked body on in a form that reads one way only, and refuses what
// a worker could read differently from tender (each smuggled a request in a conformance run).
func TestCopyChunked(t *testing.T) {
	for _, tc := range []struct {
		in, out string // out "" when refused
		rest    string
	}{
		{"5\r\nhello\r\n0\r\n\r\nNEXT", "5\r\nhello\r\n0\r\n\r\n", "NEXT"},
		{"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT",
			"5\r\nhello\r\na\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", "NEXT"},
		{"005 ; a=\"b c\"\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", ""},
		{"0\r\n\r\n", "0\r\n\r\n", ""},

		{"5\r\nhel", "", ""},
		{"5\r\nhelloX\r\n0\r\n\r\n", "", ""},
		{"zz\r\n", "", ""},
		{"1234567890123456\r\n", "", ""}, // too big
		{"\r\n", "", ""},
		{"2;\nxx\r\n3e\r\n0\r\n\r\n", "", ""},    // a bare LF ends the size line
		{"5\r\nhello\n0\r\n\r\n", "", ""},        // and the data
		{"5;a\rb\r\nhello\r\n0\r\n\r\n", "", ""}, // a bare CR in an extension
		{"5 xyz\r\nhello\r\n0\r\n\r\n", "", ""},
		{"0\r\nNo colon\r\n\r\n", "", ""},
		{"0\r\nX: 1\r\n folded\r\n\r\n", "", ""},
		{"0\r\nX: a\x00b\r\n\r\n", "", ""},
	} {
		r := bufio.NewReader(strings.NewReader(tc.in))
		var out bytes.Buffer
		err := copyChunked(&out, r, nil, nil)
		if (err == nil) != (tc.out != "") {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if rest, _ := io.ReadAll(r); err == nil && (out.String() != tc.out || string(rest) != tc.rest) {
			t.Errorf("%q: copied %q, left %q; want %q, %q", tc.in, out.String(), rest, tc.out, tc.rest)
		}
	}
}

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		eq   bool
	}{
		{"Content-Length", "content-length", true}, {"CONTENT-LENGTH", "Content-Length", true},
		{"Content-Lengtx", "Content-Length", false}, {"Content-Length-", "Content-Length", false},
		{"-", "\r", false}, {"@", "`", false}, {"[", "{", false},
	} {
		if equalFold([]byte(tc.a), tc.b) != tc.eq {
			t.Errorf("equalFold(%q, %q) != %v", tc.a, tc.b, tc.eq)
		}
	}
}

// FuzzParseRequest: no input makes the parser panic, and what it accepts it writes out as a
// request whose framing it reads back the same.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive, x\r\nx: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := parseReq(raw)
		if err != nil {
			return
		}
		out := h.appendRequest(nil, "127.0.0.1", false, firstByte)
		h2, err := parseReq(string(out))
		if errors.Is(err, errTooManyFields) && len(h.lines) > maxFields-5 { // Host, X-Forwarded-*, X-Request-Start, Connection
			return // the forwarded headers tender adds took it past the bound: a worker may say 431 too
		}
		if err != nil {
			t.Fatalf("tender's own rewrite does not parse: %v\n%q", err, out)
		}
		if h2.contentLength != h.contentLength || h2.chunked != h.chunked || h2.isUpgrade() != h.isUpgrade() {
			t.Fatalf("framing changed in the rewrite:\n%q\n%q", raw, out)
		}
	})
}
