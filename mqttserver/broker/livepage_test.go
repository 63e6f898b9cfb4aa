package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct{ name, data string }

// readEvents reads the live page's stream at url (with basic auth when user is not "") and
// hands each event to until, which returns true when it has seen enough.
func readEvents(t *testing.T, url, user, password string, until func(sseEvent) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %s, %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		case line == "":
			if until(ev) {
				return
			}
			ev = sseEvent{}
		}
	}
	t.Fatalf("stream ended before the page showed what was expected: %v", sc.Err())
}

func TestLivePageShowsClientsTopicsAndEvents(t *testing.T) {
	b, logs := startBroker(t, Config{HTTPListen: "127.0.0.1:0"})
	base := "http://" + b.endpointAddr(t, "http")
	if !logs.has(t, "live page", map[string]any{"url": base + "/", "access": "open"}) {
		t.Errorf("no line with the page's address %s/ and access=open", base)
	}

	sub := connect(t, clientOpts(b.Addr(), "live-sub"))
	if err := wait(sub.Subscribe("live/+", 1, nil)); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, clientOpts(b.Addr(), "live-pub"))
	payload := `<img src=x onerror="alert(1)">` + strings.Repeat("é", livePayload) // cut in the middle of an é
	for range 3 {
		if err := wait(pub.Publish("live/a", 0, false, payload)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wait(pub.Publish("keep/me", 1, true, "kept")); err != nil {
		t.Fatal(err)
	}

	var snap liveSnapshot
	var lines []string
	readEvents(t, base+"/events", "", "", func(ev sseEvent) bool {
		switch ev.name {
		case "snapshot":
			snap = liveSnapshot{}
			if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		case "lines":
			var l []string
			if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
				t.Fatalf("lines: %v", err)
			}
			lines = append(lines, l...)
		}
		topic := findTopic(snap.Topics, "live/a")
		return len(snap.Clients) == 2 && topic.Count == 3 && topic.LastMinute == 3 && len(snap.Retained) == 1 &&
			strings.Contains(strings.Join(lines, "\n"), "SUBSCRIBED   client=live-sub filter=live/+")
	})

	if !snap.Open {
		t.Error("without -auth the snapshot must say the page is open")
	}
	if c := snap.Clients[1]; c.ID != "live-sub" || c.Protocol != "3.1.1" || !c.Clean || c.Remote == "" || time.Since(c.Since) > time.Minute {
		t.Errorf("client: %+v", c)
	}
	want := []liveFilter{{Filter: "live/+", Subscribers: []liveSub{{Client: "live-sub", QoS: 1, Connected: true}}}}
	if fmt.Sprint(snap.Subscriptions) != fmt.Sprint(want) {
		t.Errorf("subscriptions: got %+v, want %+v", snap.Subscriptions, want)
	}
	topic := findTopic(snap.Topics, "live/a")
	if !strings.HasPrefix(topic.Payload, `<img src=x onerror="alert(1)">éé`) || !strings.HasSuffix(topic.Payload, "é…") ||
		topic.Bytes != len(payload) || len(topic.Rates) != liveWindow {
		t.Errorf("topic: %+v", topic)
	}
	if r := snap.Retained[0]; r.Topic != "keep/me" || r.Payload != "kept" || r.QoS != 1 {
		t.Errorf("retained: %+v", r)
	}

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>mqttserver live</title>") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("GET /: %s %q\n%s", resp.Status, resp.Header.Get("Content-Security-Policy"), body)
	}
}

func findTopic(topics []liveTopic, name string) liveTopic {
	for _, t := range topics {
		if t.Topic == name {
			return t
		}
	}
	return liveTopic{}
}

func TestLivePageAsksForAUserWithAuth(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(file, []byte("users:\n  viewer:\n    password: s3cret\n    subscribe: [\"#\"]\n"+
		"  sensor:\n    password: s3cret\n    subscribe: [sensors/#]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, logs := startBroker(t, Config{HTTPListen: "127.0.0.1:0", AuthFile: file})
	base := "http://" + b.endpointAddr(t, "http")
	if !logs.has(t, "live page", map[string]any{"access": "users of the auth file"}) {
		t.Error("the page's line does not say it asks for users of the auth file")
	}
	for _, c := range []struct {
		path, user, password string
		want                 int
	}{
		{"/", "", "", http.StatusUnauthorized},
		{"/", "viewer", "wrong", http.StatusUnauthorized},
		{"/", "sensor", "s3cret", http.StatusUnauthorized}, // may not read every topic: may not see the page
		{"/", "nobody", "s3cret", http.StatusUnauthorized},
		{"/events", "", "", http.StatusUnauthorized},
		{"/live.js", "", "", http.StatusUnauthorized},
		{"/", "viewer", "s3cret", http.StatusOK},
		{"/live.js", "viewer", "s3cret", http.StatusOK},
		{"/healthz", "", "", http.StatusOK}, // the probes stay open: they show no topic or payload
	} {
		req, _ := http.NewRequest("GET", base+c.path, nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s as %q/%q: %d, want %d", c.path, c.user, c.password, resp.StatusCode, c.want)
		}
		if c.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s: no basic auth challenge", c.path)
		}
	}
	// A reload of the file (SIGHUP) applies to the page at once; an anonymous entry in it does
	// not open the page (an empty user name is refused).
	if err := os.WriteFile(file, []byte("anonymous:\n  subscribe: [\"#\"]\nusers:\n  viewer:\n    password: n3w\n    subscribe: [\"#\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int{"viewer:s3cret": http.StatusUnauthorized, "viewer:n3w": http.StatusOK, ":": http.StatusUnauthorized} {
		name, password, _ := strings.Cut(user, ":")
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.SetBasicAuth(name, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("after the reload, GET / as %q: %d, want %d", user, resp.StatusCode, want)
		}
	}
	readEvents(t, base+"/events", "viewer", "n3w", func(ev sseEvent) bool {
		if ev.name != "snapshot" {
			return false
		}
		if strings.Contains(ev.data, `"open":true`) {
			t.Error("with -auth the snapshot must not say the page is open")
		}
		return true
	})
}

func TestShorten(t *testing.T) {
	long := strings.Repeat("a", livePayload)
	for _, c := range []struct {
		in   string
		size int
		want string
	}{
		{"hello", 5, "hello"},
		{"", 0, ""},
		{long, livePayload, long},
		{long + "b", livePayload + 1, long + "…"},
		{"\xff\xfeok", 4, "\uFFFDok"}, // a run of invalid bytes is one U+FFFD
		{strings.Repeat("a", livePayload-1) + "é", livePayload + 1, strings.Repeat("a", livePayload-1) + "…"},
	} {
		if got := shorten([]byte(c.in), c.size); got != c.want {
			t.Errorf("shorten(%q, %d) = %q, want %q", c.in, c.size, got, c.want)
		}
	}
}

func TestLineRingSince(t *testing.T) {
	r := new(lineRing)
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
	p := newLivePage(nil, new(lineRing))
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
	p := newLivePage(nil, new(lineRing))
	pk := packets.Packet{TopicName: "sensors/1/temperature", Payload: []byte(`{"t":21.5}`)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.OnPublished(nil, pk)
		}
	})
}
