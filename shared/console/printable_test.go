package console

import "testing"

// TestPrintable: what a publisher could use to take over a reader's terminal or forge a line is
// escaped; plain text, UTF-8 included, is left as it is.
func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"time:2026-12-07T16:50:07Z", "time:2026-12-07T16:50:07Z"},
		{"température 21 °C, 東京", "température 21 °C, 東京"},
		{`C:\temp`, `C:\temp`},
		{"A\x1b[2J\x1b]0;pwned\x07B", `A\x1b[2J\x1b]0;pwned\x07B`},
		{"line1\nRECEIVED fake", `line1\nRECEIVED fake`},
		{"a\r\tb\x00c\x7f", `a\r\tb\x00c\x7f`},
		{"\u009b2J", `\u009b2J`},
		{"abc\u202eevil", `abc\u202eevil`},
		{"bin\xff\xfe", `bin\xff\xfe`},
		{"", ""},
	} {
		if got := Printable(c.in); got != c.want {
			t.Errorf("Printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
