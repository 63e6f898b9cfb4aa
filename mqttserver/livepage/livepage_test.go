package livepage

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestShorten(t *testing.T) {
	long := strings.Repeat("a", PayloadShown)
	for _, c := range []struct {
		in   string
		size int
		want string
	}{
		{"hello", 5, "hello"},
		{"", 0, ""},
		{long, PayloadShown, long},
		{long + "b", PayloadShown + 1, long + "…"},
		{"\xff\xfeok", 4, "\uFFFDok"}, // a run of invalid bytes is one U+FFFD
		{strings.Repeat("a", PayloadShown-1) + "é", PayloadShown + 1, strings.Repeat("a", PayloadShown-1) + "…"},
	} {
		if got := shorten([]byte(c.in), c.size); got != c.want {
			t.Errorf("shorten(%q, %d) = %q, want %q", c.in, c.size, got, c.want)
		}
	}
}

func TestLineRingSince(t *testing.T) {
	r := new(LineRing)
	for i := range liveLines + 5 {
		fmt.Fprintf(r, "line %d\n", i)
	}
	got, next := r.since(0)
	if len(got) != liveLines || got[0] != "line 5" || next != liveLines+5 {
		t.Errorf("since(0): %d lines from %q, next %d", len(got), got[0], next)
	}
	got, _ = r.since(2)
	if got[0] != "… 3 lines not shown" || got[1] != "line 5" {
		t.Errorf("since(2): %q", got[:2])
	}
	if got, _ := r.since(next); len(got) != 0 {
		t.Errorf("since(next): %q", got)
	}
}

// The message path: no allocation for a known topic, and a bounded number of topics.
func TestLivePageCountsWithoutAllocating(t *testing.T) {
	p := New(nil, new(LineRing))
	pk := packets.Packet{TopicName: "a/b", Payload: []byte("hello")}
	p.OnPublished(nil, pk)
	if n := testing.AllocsPerRun(1000, func() { p.OnPublished(nil, pk) }); n != 0 {
		t.Errorf("OnPublished allocates %v times a message", n)
	}
	for i := range liveTopics + 10 {
		p.OnPublished(nil, packets.Packet{TopicName: fmt.Sprint("t/", i)})
	}
	if len(p.topics) != liveTopics || p.others.Load() != 11 {
		t.Errorf("%d topics counted, %d others", len(p.topics), p.others.Load())
	}
}

// BenchmarkLivePageOnPublished is the page's cost on the message path, one topic, from every
// core at once.
func BenchmarkLivePageOnPublished(b *testing.B) {
	p := New(nil, new(LineRing))
	pk := packets.Packet{TopicName: "sensors/1/temperature", Payload: []byte(`{"t":21.5}`)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.OnPublished(nil, pk)
		}
	})
}
