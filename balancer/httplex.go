package balancer

import "bytes"

// The words of HTTP/1.1 (RFC 9110, 9112), read without allocating.

// parseLength reads a Content-Length: digits only, no sign, and few enough not to overflow.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// lastToken reports whether the last comma-separated token of v is tok.
func lastToken(v []byte, tok string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return equalFold(trimOWS(v), tok)
}

// forEachToken calls fn with each comma-separated element of a list value, trimmed, empty
// ones left out.
func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		tok := v
		if i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if tok = trimOWS(tok); len(tok) > 0 {
			fn(tok)
		}
	}
}

// appendLower appends b to dst with its ASCII letters in lower case.
func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// equalFold is ASCII case-insensitive equality, without allocating.
func equalFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x|0x20 != y|0x20 || (x|0x20 < 'a' || x|0x20 > 'z') && x != y {
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token (a method or header name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

// trimOWS trims the optional whitespace of HTTP, spaces and tabs: unlike bytes.TrimSpace, not
// \v, \f or Unicode spaces, which a worker would read as part of the value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// isFieldValue reports whether b holds no control character but tab (RFC 9110 5.5): a bare CR
// or a NUL would be read differently by different parsers.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// isTarget reports whether b is a request-target of visible ASCII characters (RFC 9112 3.2).
func isTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// isHost reports whether b may be a Host header's value: a host name or an IP literal, and a
// port (RFC 9110 7.2); empty is allowed.
func isHost(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) ||
			bytes.IndexByte([]byte("-._~!$&'()*+,;=:[]%"), c) >= 0) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// cutSchemePrefix is bytes.CutPrefix with the scheme's case ignored.
func cutSchemePrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || !equalFold(b[:len(prefix)], prefix) {
		return b, false
	}
	return b[len(prefix):], true
}
