package console

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable is s as a line of a terminal may show it: control characters (C0, DEL, C1), the
// marks that reorder text (bidirectional overrides and isolates) and bytes that are not UTF-8
// are written as escapes (\n, \x1b, \u202e). A topic or payload comes from whoever published
// it: written raw, an ESC sequence could clear or retitle the reader's terminal, and a newline
// could forge a line of output. Plain text, backslashes included, is left as it is; -json
// gives the exact bytes.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if unprintable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s // most payloads: no copy
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unprintable(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unprintable(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unprintable: what Printable escapes (utf8.RuneError stands for a byte that is not UTF-8 as
// well as for U+FFFD itself, which is then escaped too).
func unprintable(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 ||
		r == utf8.RuneError
}
