package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mqttdemo/mqttserver/livepage"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	payload := `<img src=x onerror="alert(1)">` + strings.Repeat("é", livepage.PayloadShown) // cut in the middle of an é
	for range 3 {
		if err := wait(pub.Publish("live/a", 0, false, payload)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wait(pub.Publish("keep/me", 1, true, "kept")); err != nil {
		t.Fatal(err)
	}

	var snap livepage.Snapshot
	var lines []string
	readEvents(t, base+"/events", "", "", func(ev sseEvent) bool {
		switch ev.name {
		case "snapshot":
			snap = livepage.Snapshot{}
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
	want := []livepage.Filter{{Filter: "live/+", Subscribers: []livepage.Subscriber{{Client: "live-sub", QoS: 1, Connected: true}}}}
	if fmt.Sprint(snap.Subscriptions) != fmt.Sprint(want) {
		t.Errorf("subscriptions: got %+v, want %+v", snap.Subscriptions, want)
	}
	topic := findTopic(snap.Topics, "live/a")
	if !strings.HasPrefix(topic.Payload, `<img src=x onerror="alert(1)">éé`) || !strings.HasSuffix(topic.Payload, "é…") ||
		topic.Bytes != len(payload) || len(topic.Rates) != livepage.RateWindow {
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

func findTopic(topics []livepage.Topic, name string) livepage.Topic {
	for _, t := range topics {
		if t.Topic == name {
			return t
		}
	}
	return livepage.Topic{}
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
