// Package pyrepr formats values the way Python's repr() and str() do, so that error messages
// the gateway writes are identical to those of the Python inference service (which writes
// f"input {name!r} ..." and f"shape {list(shape)}").
package pyrepr

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Str is Python's repr() of a str: single quotes unless the text holds a single quote and no
// double quote; backslash, the quote, \t \n \r escaped; other control characters and
// non-printable code points escaped as \xNN, \uNNNN or \UNNNNNNNN. s must be valid UTF-8
// (protobuf strings are); an invalid byte is escaped as \xNN.
func Str(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	AppendStr(&b, s)
	return b.String()
}

// AppendStr writes Str(s) to b.
func AppendStr(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == quote || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\t':
				b.WriteString(`\t`)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c < ' ' || c == 0x7f:
				writeHex(b, `\x`, uint32(c), 2)
			default:
				b.WriteByte(c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			writeHex(b, `\x`, uint32(s[i]), 2)
			i++
			continue
		}
		i += size
		switch {
		case unicode.IsPrint(r): // Python's str.isprintable: not C*, not Z* except ' '
			b.WriteRune(r)
		case r <= 0xff:
			writeHex(b, `\x`, uint32(r), 2)
		case r <= 0xffff:
			writeHex(b, `\u`, uint32(r), 4)
		default:
			writeHex(b, `\U`, uint32(r), 8)
		}
	}
	b.WriteByte(quote)
}

func writeHex(b *strings.Builder, prefix string, v uint32, digits int) {
	b.WriteString(prefix)
	h := strconv.FormatUint(uint64(v), 16)
	for n := len(h); n < digits; n++ {
		b.WriteByte('0')
	}
	b.WriteString(h)
}

// Ints is str(list(values)) for ints: "[2, 3]", "[]".
func Ints(values []int64) string {
	var b strings.Builder
	AppendInts(&b, values)
	return b.String()
}

// AppendInts writes Ints(values) to b.
func AppendInts(b *strings.Builder, values []int64) {
	b.WriteByte('[')
	var tmp [24]byte
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(strconv.AppendInt(tmp[:0], v, 10))
	}
	b.WriteByte(']')
}

// JoinStrs is ", ".join(repr(n) for n in names).
func JoinStrs(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		AppendStr(&b, n)
	}
	return b.String()
}

// IsSpace is Python's str.isspace for one code point (what str.strip() removes): Go's
// unicode.IsSpace plus the information separators U+001C..U+001F.
func IsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// Strip is Python's str.strip() with no argument.
func Strip(s string) string {
	return strings.TrimFunc(s, IsSpace)
}
