package console

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestConsoleLine(t *testing.T) {
	for _, c := range []struct {
		color bool
		want  string
	}{
		{false, "19:07:42.123 CONNECTED    to broker\n"},
		{true, "\x1b[2m19:07:42.123\x1b[22m \x1b[32;1mCONNECTED   \x1b[0;22m to broker\n"},
	} {
		var out bytes.Buffer
		con := New(&out, c.color)
		con.now = func() time.Time { return time.Date(2026, 11, 25, 19, 7, 42, 123e6, time.UTC) }
		con.Line(StyleGood, "CONNECTED", "to broker")
		if out.String() != c.want {
			t.Errorf("color %v: got %q, want %q", c.color, out.String(), c.want)
		}
	}
}

func TestUseColor(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	var notTerminal bytes.Buffer
	for _, c := range []struct {
		mode   string
		getenv func(string) string
		want   bool
	}{
		{"always", env("NO_COLOR", "1"), true},
		{"never", env(), false},
		{"auto", env(), false}, // a buffer is not a terminal
		{"auto", env("NO_COLOR", "1"), false},
		{"auto", env("TERM", "dumb"), false},
	} {
		if got := UseColor(c.mode, &notTerminal, c.getenv); got != c.want {
			t.Errorf("UseColor(%s) = %v, want %v", c.mode, got, c.want)
		}
	}
}

func TestConsoleLinesDoNotMix(t *testing.T) {
	var out syncBuffer
	con := New(&out, true)
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				con.Line(StyleMessage, "RECEIVED", "payload")
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, "\x1b[36;1mRECEIVED    \x1b[0;22m payload") {
			t.Fatalf("mixed line %q", l)
		}
	}
}

// syncBuffer counts on Console's own locking: it checks nothing else serialises writes.
type syncBuffer struct{ bytes.Buffer }
