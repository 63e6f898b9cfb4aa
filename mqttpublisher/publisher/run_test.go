package publisher

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// TestMessagesFromStdin: -stdin publishes each line, however long (a line of more than 1 MiB
// ended the input without a word, and the lines after it were lost), and a read error is an
// error, not the end of the input.
func TestMessagesFromStdin(t *testing.T) {
	long := strings.Repeat("x", 2<<20)
	broken := errors.New("broken pipe")
	for _, c := range []struct {
		name    string
		in      io.Reader
		count   int
		want    []string
		wantErr error
	}{
		{"lines", strings.NewReader("a\nb\n"), 0, []string{"a", "b"}, nil},
		{"the last line without its newline", strings.NewReader("a\nb"), 0, []string{"a", "b"}, nil},
		{"Windows line ends", strings.NewReader("a\r\nb\r\n"), 0, []string{"a", "b"}, nil},
		{"an empty line", strings.NewReader("a\n\nb\n"), 0, []string{"a", "", "b"}, nil},
		{"nothing", strings.NewReader(""), 0, nil, nil},
		{"a line of 2 MiB, then another", strings.NewReader(long + "\nafter\n"), 0, []string{long, "after"}, nil},
		{"-count 1", strings.NewReader("a\nb\n"), 1, []string{"a"}, nil},
		{"a read error", io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(broken)), 0, []string{"a"}, broken},
	} {
		t.Run(c.name, func(t *testing.T) {
			var readErr error
			var got []string
			for m := range messages(context.Background(), Config{Stdin: true, Count: c.count}, c.in, &readErr) {
				got = append(got, m)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("published %d messages %.40q, want %d %.40q", len(got), got, len(c.want), c.want)
			}
			if !errors.Is(readErr, c.wantErr) || (readErr == nil) != (c.wantErr == nil) {
				t.Errorf("read error %v, want %v", readErr, c.wantErr)
			}
		})
	}
}
