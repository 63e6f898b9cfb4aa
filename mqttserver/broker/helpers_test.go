package broker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// waitTimeout bounds every wait of the tests; it is reached only when a test fails.
const waitTimeout = 15 * time.Second

// logBuffer collects log output safely from the broker's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records parses the JSON log lines, failing the test on a line that is not JSON.
func (b *logBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// has tells whether a record with message msg has every attribute of attrs.
func (b *logBuffer) has(t testing.TB, msg string, attrs map[string]any) bool {
	for _, r := range b.records(t) {
		if r["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			if fmt.Sprint(r[k]) != fmt.Sprint(v) {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startBroker runs a broker on 127.0.0.1:0 with cfg, logging JSON at debug into the returned buffer.
func startBroker(t testing.TB, cfg Config) (*Broker, *logBuffer) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.LogFormat, cfg.LogLevel = "json", slog.LevelDebug
	if cfg.Limits == (limits.Limits{}) {
		cfg.Limits = limits.DefaultLimits()
	}
	logs := new(logBuffer)
	getenv := func(string) string { return "" }
	b, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), logs, getenv), eventlog.LibraryLogger(cfg.logSettings(), logs, false))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	return b, logs
}

// clientOpts are paho options for a test client of the broker at addr (host:port).
func clientOpts(addr, id string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(waitTimeout).SetWriteTimeout(waitTimeout)
}

// connect connects a paho client, failing the test when the broker refuses it.
func connect(t testing.TB, opts *paho.ClientOptions) paho.Client {
	t.Helper()
	c := paho.NewClient(opts)
	if err := wait(c.Connect()); err != nil {
		t.Fatalf("connect %s: %v", opts.ClientID, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// goOffline disconnects c (client id) and waits until the broker has ended its connection:
// paho's Disconnect returns once its DISCONNECT is written, before the broker has read it,
// and a message published in between still goes to the old connection instead of the queue.
func goOffline(t testing.TB, b *Broker, c paho.Client, id string) {
	t.Helper()
	c.Disconnect(100)
	waitFor(t, id+"'s connection to end", func() bool { cl, ok := b.server.Clients.Get(id); return !ok || cl.Closed() })
}

// wait waits for a paho token with waitTimeout.
func wait(tok paho.Token) error {
	if !tok.WaitTimeout(waitTimeout) {
		return fmt.Errorf("no answer within %v", waitTimeout)
	}
	return tok.Error()
}

// received collects messages delivered to a paho handler.
type received struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func (r *received) handler(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m.Topic()+" "+string(m.Payload()))
}

func (r *received) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }
