//go:build unix

// The tests of this file lower the broker's open-file limit (RLIMIT_NOFILE, with the shell's
// ulimit -n): a Unix setting.

package tests

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// recoverWithin bounds how long a listener may stay deaf once descriptors are free again: the
// retry waits at most 1 s, and the backlog of closed connections is drained first.
const recoverWithin = 10 * time.Second

// TestListenersSurviveRunningOutOfFiles: under a 64-file limit, 64 connections held to every
// listener (MQTT, TLS, WebSocket, HTTP) exhaust the broker's descriptors. Meanwhile the log says
// so once a second with the count and /healthz (on a connection opened before) answers 503
// with the reason; once they are closed, a new client of each listener is served again.
// mochi's listeners returned from Serve at the first Accept error: MQTT and TLS stayed deaf
// for good, and /healthz said ok.
func TestListenersSurviveRunningOutOfFiles(t *testing.T) {
	// MQTT_SOAK=1: issue 21's scenario, a 1,024-file limit and 1,224 connections held 3 s.
	limit, each, hold := 64, 64, time.Duration(0)
	if os.Getenv("MQTT_SOAK") == "1" {
		limit, each, hold = 1024, 306, 3*time.Second
	}
	raiseFileLimit(t, uint64(4*each+100)) // the test's own ends of the connections
	b := harness.Build(t)
	certs := genCerts(t)
	server := harness.Start(t, "mqttserver", "sh", nil, "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, limit),
		b.Server, "-log-format", "json", "-listen", "127.0.0.1:0", "-tls-listen", "127.0.0.1:0",
		"-tls-cert", filepath.Join(certs, "server.crt"), "-tls-key", filepath.Join(certs, "server.key"),
		"-ws-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0")
	addr := startedAddrs(t, server)

	// A connection to /healthz opened now, while the broker has descriptors to accept it.
	health, err := net.DialTimeout("tcp", addr["http"], harness.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer health.Close()
	healthz := func() (int, string) {
		t.Helper()
		_ = health.SetDeadline(time.Now().Add(harness.Timeout))
		if _, err := io.WriteString(health, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(health), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	if code, body := healthz(); code != http.StatusOK {
		t.Fatalf("/healthz before = %d %s", code, body)
	}

	// More connections to each listener than the broker has descriptors, held open.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range each { // in turn, so that every listener meets the limit with connections waiting
		for _, name := range []string{"mqtt", "mqtts", "ws", "http"} {
			c, err := net.DialTimeout("tcp", addr[name], harness.Timeout) // the kernel's backlog takes it
			if err != nil {
				t.Fatalf("hold a connection to %s: %v", name, err)
			}
			held = append(held, c)
		}
	}
	exhausted := time.Now()
	failing := func() []map[string]any { return logRecords(t, server, "accept failing") }
	summed := func() bool { // a line that sums up more than one error
		for _, l := range failing() {
			if n, _ := l["errors"].(float64); n > 1 {
				return true
			}
		}
		return false
	}
	// The first error is logged at once; a summary with the count follows about a second later
	// while the errors go on (the broker closes the connections it holds after 10 s).
	deadline := time.Now().Add(5 * time.Second)
	for !summed() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling, not synchronisation
	}
	lines := failing()
	if !summed() {
		t.Errorf("no %q line summing up errors within 5 s of running out of files: %v", "accept failing", lines)
	}
	seconds := time.Since(exhausted).Seconds()
	per := map[any]int{}
	for _, l := range lines {
		per[l["listener"]]++
		if !strings.Contains(fmt.Sprint(l["error"]), "too many open files") {
			t.Errorf("accept failing line without the error: %v", l)
		}
	}
	for name, n := range per {
		if float64(n) > seconds+2 {
			t.Errorf("%d lines for %v in %.1f s: one a second at most, not one per error", n, name, seconds)
		}
	}
	if code, body := healthz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "too many open files") {
		t.Errorf("/healthz while accepting fails = %d %s, want 503 with the reason", code, body)
	}

	time.Sleep(time.Until(exhausted.Add(hold))) // the scenario's length, not a synchronisation
	for _, c := range held {
		c.Close()
	}
	held = nil
	released := time.Now()
	for _, c := range []struct {
		name string
		try  func() error
	}{
		{"mqtt", func() error { return connack(tcpDial(addr["mqtt"])) }},
		{"mqtts", func() error { return connack(tlsDial(addr["mqtts"], filepath.Join(certs, "ca.crt"))) }},
		{"ws", func() error { return connack(wsDial(addr["ws"])) }},
		{"http", func() error {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr["http"] + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/healthz: %s", resp.Status)
			}
			return nil
		}},
	} {
		deadline := time.Now().Add(recoverWithin) // each its own: a deaf listener must not eat the next one's time
		err := c.try()
		for err != nil && time.Now().Before(deadline) {
			err = c.try() // each try waits up to 2 s
		}
		if err != nil {
			t.Errorf("%s: no new client served within %s: %v", c.name, time.Since(released).Round(time.Second), err)
		}
	}
	server.WaitFor(t, `"msg":"accepting again"`)
	resp, err := (&http.Client{Timeout: harness.Timeout}).Get("http://" + addr["http"] + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		AcceptErrors int64 `json:"accept_errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil || stats.AcceptErrors == 0 {
		t.Errorf("/stats accept_errors = %d (%v), want the errors waited out", stats.AcceptErrors, err)
	}
}

// startedAddrs waits for the JSON "server started" line and returns each listener's host:port.
func startedAddrs(t *testing.T, server *harness.Proc) map[string]string {
	t.Helper()
	line := server.WaitFor(t, `"server started"`)
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("started line %q: %v", line, err)
	}
	addr := map[string]string{}
	for _, name := range []string{"mqtt", "mqtts", "ws", "http"} {
		if u, ok := rec[name].(string); ok {
			_, hostPort, _ := strings.Cut(u, "://")
			addr[name], _, _ = strings.Cut(hostPort, "/")
		}
	}
	return addr
}

// logRecords are the JSON log lines of the process with message msg.
func logRecords(t *testing.T, p *harness.Proc, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range p.Out.Lines(re(`"msg":"` + msg + `"`)) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err == nil {
			out = append(out, rec)
		}
	}
	return out
}

// A dial of a new client: its connection, ready for CONNECT.
type dialed struct {
	conn net.Conn
	err  error
}

func tcpDial(addr string) dialed {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	return dialed{c, err}
}

func tlsDial(addr, caFile string) dialed {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return dialed{nil, err}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second},
		Config: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
	c, err := d.Dial("tcp", addr)
	return dialed{c, err}
}

func wsDial(addr string) dialed {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 2 * time.Second}
	ws, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
	if err != nil {
		return dialed{nil, err}
	}
	return dialed{&wsStream{Conn: ws.NetConn(), ws: ws}, nil}
}

// wsStream sends each Write as one binary message and reads the messages' bytes in a row.
type wsStream struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read
}

func (s *wsStream) Write(p []byte) (int, error) {
	return len(p), s.ws.WriteMessage(websocket.BinaryMessage, p)
}

func (s *wsStream) Read(p []byte) (int, error) {
	if s.r == nil {
		_, r, err := s.ws.NextReader()
		if err != nil {
			return 0, err
		}
		s.r = r
	}
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.r, err = nil, nil
	}
	return n, err
}

// connack sends a CONNECT on a new connection and waits 2 s for the CONNACK that accepts it.
func connack(d dialed) error {
	if d.err != nil {
		return d.err
	}
	defer d.conn.Close()
	_ = d.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := d.conn.Write(rawmqtt.Connect{ID: "after", Clean: true}.Encode()); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(d.conn, ack); err != nil {
		return fmt.Errorf("no CONNACK: %w", err)
	}
	if !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		return fmt.Errorf("CONNACK % x", ack)
	}
	return nil
}
