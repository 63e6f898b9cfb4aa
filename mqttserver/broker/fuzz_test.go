package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The fuzz targets feed arbitrary bytes to the broker as if a client sent them. Each input must
// leave the broker as it was: no panic (a panic in a client goroutine kills the test process),
// the connection closed and its goroutines gone once the client hangs up, and a fresh client
// still able to connect, subscribe, publish and receive.
//
// The seed corpus lives in testdata/fuzz/FuzzBrokerTCP (one file per kind of malformed packet,
// written from seedInputs by TestSeedCorpus) and runs as a regular test:
//
//	go test -run 'FuzzBroker|TestSeedCorpus' mqttdemo/mqttserver/broker
//	go test -run '^$' -fuzz FuzzBrokerTCP -fuzztime 20s mqttdemo/mqttserver/broker

// fuzzDeadline bounds every wait of the fuzz targets; it is only reached when the broker hangs.
const fuzzDeadline = 10 * time.Second

// FuzzBrokerTCP sends the input over a real TCP connection to a running broker, then hangs up.
func FuzzBrokerTCP(f *testing.F) {
	addSeeds(f, false)
	b := startFuzzBroker(f)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		conn, err := net.DialTimeout("tcp", b.Addr(), fuzzDeadline)
		if err != nil {
			t.Fatalf("dial broker: %v", err)
		}
		_ = conn.SetDeadline(time.Now().Add(fuzzDeadline))
		// The broker may hang up half-way through a bad input: write errors are expected.
		_, _ = conn.Write(data)
		_ = conn.(*net.TCPConn).CloseWrite()
		// After our FIN the broker must close its side, whatever it made of the bytes.
		_, err = io.Copy(io.Discard, conn)
		_ = conn.Close()
		if fzIsTimeout(err) {
			t.Fatalf("broker kept the connection open %s after the client hung up (input %q)", fuzzDeadline, data)
		}
		checkBrokerRecovered(t, b, n.Add(1))
	})
}

// FuzzBrokerPipe runs the same inputs through the broker's connection path in-process (mochi's
// EstablishConnection on an in-memory pipe): the packet decoding, validation and our hooks, with
// debug logging on, without the network.
func FuzzBrokerPipe(f *testing.F) {
	addSeeds(f, true)
	b := startFuzzBroker(f)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- b.server.EstablishConnection("fuzz", server) }()
		// A pipe has no buffer: drain what the broker answers, or its writes would block.
		drained := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, client)
			close(drained)
		}()
		_ = client.SetWriteDeadline(time.Now().Add(fuzzDeadline))
		_, _ = client.Write(data)
		_ = client.Close()
		select {
		case <-done:
		case <-time.After(fuzzDeadline):
			t.Fatalf("EstablishConnection still running %s after the client hung up (input %q)", fuzzDeadline, data)
		}
		<-drained
		checkBrokerRecovered(t, b, n.Add(1))
	})
}

// startFuzzBroker starts one broker for all the inputs of a fuzz target: on 127.0.0.1:0, debug
// logging (so every log path formats the hostile values) to nowhere.
func startFuzzBroker(tb testing.TB) *Broker {
	tb.Helper()
	cfg := Config{Listen: "127.0.0.1:0", LogLevel: slog.LevelDebug, LogFormat: "text", Color: "never", Limits: limits.DefaultLimits()}
	noenv := func(string) string { return "" }
	b, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), io.Discard, noenv), eventlog.LibraryLogger(cfg.logSettings(), io.Discard, false))
	if err != nil {
		tb.Fatalf("new broker: %v", err)
	}
	if err := b.Start(); err != nil {
		tb.Fatalf("start broker: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// checkBrokerRecovered fails t unless the broker's per-connection goroutines are gone and a
// fresh client can still use it.
func checkBrokerRecovered(t *testing.T, b *Broker, n int64) {
	t.Helper()
	if err := waitNoClientGoroutines(fuzzDeadline); err != nil {
		t.Fatal(err)
	}
	if err := fuzzProbe(b.Addr(), "probe-"+strconv.FormatInt(n, 10)); err != nil {
		t.Fatalf("a fresh client cannot use the broker any more: %v", err)
	}
}

// clientGoroutineMarks name the functions a broker runs per connection: the reader (attachClient
// on the listener's goroutine, or EstablishConnection's caller) and the writer.
var clientGoroutineMarks = []string{
	"mochi-mqtt/server/v2.(*Server).attachClient",
	"mochi-mqtt/server/v2.(*Client).WriteLoop",
}

// clientGoroutines returns the stacks of the goroutines serving a client connection.
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, mark := range clientGoroutineMarks {
			if strings.Contains(g, mark) {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// waitNoClientGoroutines waits until no goroutine serves a client connection: all connections are
// closed by then, so any left is a leak.
func waitNoClientGoroutines(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := clientGoroutines()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d connection goroutines still running %s after every client hung up:\n%s",
				len(left), timeout, strings.Join(left, "\n\n"))
		}
		time.Sleep(time.Millisecond)
	}
}

// probe is a fresh MQTT 3.1.1 client that connects, subscribes to its own topic, publishes one
// message to it, and waits for it to come back.
func fuzzProbe(addr, id string) error {
	conn, err := net.DialTimeout("tcp", addr, fuzzDeadline)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(fuzzDeadline))
	topic, payload := "probe/"+id, "alive "+id
	if _, err := conn.Write(fzConnect(id, true, 30)); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	ack, err := fzReadPacket(conn)
	if err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		return fmt.Errorf("CONNACK: got % x, %v", ack, err)
	}
	if _, err := conn.Write(fzSubscribe(1, topic, 0)); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	suback, err := fzReadPacket(conn)
	if err != nil || !bytes.Equal(suback, []byte{0x90, 3, 0, 1, 0}) {
		return fmt.Errorf("SUBACK: got % x, %v", suback, err)
	}
	if _, err := conn.Write(fzPublish(0, 0, topic, payload)); err != nil {
		return fmt.Errorf("send PUBLISH: %w", err)
	}
	// A retained message an earlier input left on a matching topic may come first.
	want := fzPublish(0, 0, topic, payload)
	for {
		pk, err := fzReadPacket(conn)
		if err != nil {
			return fmt.Errorf("wait for own message: %w", err)
		}
		if bytes.Equal(pk, want) {
			break
		}
	}
	_, _ = conn.Write([]byte{0xe0, 0}) // DISCONNECT
	if _, err := io.Copy(io.Discard, conn); err != nil {
		return fmt.Errorf("broker did not close after DISCONNECT: %w", err)
	}
	return nil
}

// readPacket reads one whole MQTT packet (fixed header included).
func fzReadPacket(r io.Reader) ([]byte, error) {
	head := make([]byte, 1, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	length, mult := 0, 1
	for i := 0; ; i++ {
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		head = append(head, b[0])
		length += int(b[0]&127) * mult
		if b[0]&128 == 0 {
			break
		}
		if i == 3 {
			return nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(head, body...), nil
}

func fzIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Packet builders for the seeds and the probe. They compute the remaining length; seeds that
// need a wrong one build it by hand.

// remainingLength encodes n as MQTT's variable byte integer.
func fzRemainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 128
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

func fzPacket(header byte, body ...[]byte) []byte {
	joined := bytes.Join(body, nil)
	return append(append([]byte{header}, fzRemainingLength(len(joined))...), joined...)
}

// str is an MQTT string: two length bytes, then the bytes.
func fzString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func fzU16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

func fzConnect(id string, clean bool, keepalive int) []byte {
	flags := byte(0)
	if clean {
		flags = 0x02
	}
	return fzPacket(0x10, fzString("MQTT"), []byte{4, flags}, fzU16(keepalive), fzString(id))
}

// fzConnectV5 is an MQTT 5 CONNECT with Clean Start and a session expiry interval (0: none sent).
func fzConnectV5(id string, cleanStart bool, expiry uint32) []byte {
	flags := byte(0)
	if cleanStart {
		flags = 0x02
	}
	props := []byte{}
	if expiry > 0 {
		props = []byte{0x11, byte(expiry >> 24), byte(expiry >> 16), byte(expiry >> 8), byte(expiry)}
	}
	return fzPacket(0x10, fzString("MQTT"), []byte{5, flags}, fzU16(60), []byte{byte(len(props))}, props, fzString(id))
}

func fzSubscribe(pid int, filter string, qos byte) []byte {
	return fzPacket(0x82, fzU16(pid), fzString(filter), []byte{qos})
}

func fzPublish(qos byte, pid int, topic, payload string) []byte {
	if qos == 0 {
		return fzPacket(0x30, fzString(topic), []byte(payload))
	}
	return fzPacket(0x30|qos<<1, fzString(topic), fzU16(pid), []byte(payload))
}

func fzConcat(pks ...[]byte) []byte { return bytes.Join(pks, nil) }

// seedInputs are the malformed (and a few well-formed) inputs every run tries; TestSeedCorpus
// keeps testdata/fuzz/FuzzBrokerTCP in step with them.
func seedInputs() map[string][]byte {
	connect := fzConnect("seed", true, 30)
	return map[string][]byte{
		"empty": {},
		// A well-formed session, so the fuzzer mutates from packets the broker accepts.
		"valid-session": fzConcat(connect,
			fzSubscribe(1, "a/+", 2),
			fzPublish(0, 0, "a/b", "zero"),
			fzPublish(1, 2, "a/b", "one"),
			fzPublish(2, 3, "a/b", "two"),
			[]byte{0x62, 2, 0, 3}, // PUBREL 3
			[]byte{0xc0, 0},       // PINGREQ
			fzPacket(0xa2, fzU16(4), fzString("a/+")),
			[]byte{0xe0, 0}),
		"valid-v5-connect-properties": fzPacket(0x10, fzString("MQTT"), []byte{5, 0x02}, fzU16(30),
			[]byte{8, 0x11, 0, 0, 0, 60, 0x21, 0, 10}, // session expiry 60, receive maximum 10
			fzString("seed-v5")),
		"will-then-vanish": fzPacket(0x10, fzString("MQTT"), []byte{4, 0x02 | 0x04 | 0x08}, fzU16(30), // will QoS 1
			fzString("seed-will"), fzString("will/topic"), fzString("gone")),
		// Truncated: the connection ends inside a packet.
		"truncated-connect":           connect[:9],
		"truncated-remaining-length":  {0x10, 0xff, 0xff},
		"truncated-publish":           fzConcat(connect, fzPublish(1, 1, "a/b", "payload")[:8]),
		"truncated-subscribe-options": fzConcat(connect, fzPacket(0x82, fzU16(1), fzString("a/b"))),
		// Oversized: a remaining length past the 4-byte maximum, the largest legal length with
		// no body, and a real 16 KiB message.
		"remaining-length-5-bytes": {0x10, 0xff, 0xff, 0xff, 0xff, 0x01},
		"remaining-length-256mib":  fzConcat(connect, []byte{0x30, 0xff, 0xff, 0xff, 0x7f, 0, 3, 'a', '/', 'b'}),
		"publish-16kib":            fzConcat(connect, fzPublish(0, 0, "a/b", strings.Repeat("x", 16<<10))),
		// Wrong remaining length: shorter and longer than the packet's content.
		"connect-length-short": append([]byte{0x10, 10}, connect[2:]...),
		"connect-length-long":  append([]byte{0x10, byte(len(connect) + 20)}, connect[2:]...),
		"publish-length-short": fzConcat(connect, []byte{0x30, 2, 0, 3, 'a', '/', 'b'}),
		"string-longer-than-packet": fzConcat(connect,
			fzPacket(0x30, []byte{0xff, 0xff}, []byte("a/b"))),
		// Bad UTF-8 and forbidden characters in names.
		"bad-utf8-topic":      fzConcat(connect, fzPublish(0, 0, "a/\xff\xfe", "x")),
		"nul-in-topic":        fzConcat(connect, fzPublish(0, 0, "a/\x00b", "x")),
		"bad-utf8-filter":     fzConcat(connect, fzSubscribe(1, "\xc3\x28/#", 0)),
		"bad-utf8-client-id":  fzConnect("\xed\xa0\x80", true, 30), // a UTF-16 surrogate
		"wildcard-in-publish": fzConcat(connect, fzPublish(0, 0, "a/#", "x")),
		"bad-filter":          fzConcat(connect, fzSubscribe(1, "a/#/b", 0), fzSubscribe(2, "a+", 0)),
		// Invalid QoS 3, in each place a QoS appears.
		"publish-qos-3":   fzConcat(connect, fzPacket(0x36, fzString("a/b"), fzU16(1), []byte("x"))),
		"subscribe-qos-3": fzConcat(connect, fzSubscribe(1, "a/b", 3)),
		"will-qos-3": fzPacket(0x10, fzString("MQTT"), []byte{4, 0x02 | 0x04 | 0x18}, fzU16(30),
			fzString("seed-will"), fzString("will/topic"), fzString("gone")),
		// Protocol order violations.
		"second-connect":         fzConcat(connect, fzConnect("seed-2", true, 30)),
		"publish-before-connect": fzPublish(0, 0, "a/b", "x"),
		"connack-from-client":    fzConcat(connect, []byte{0x20, 2, 0, 0}),
		"unknown-protocol-name":  fzPacket(0x10, fzString("MQTX"), []byte{4, 0x02}, fzU16(30), fzString("seed")),
		"protocol-level-9":       fzPacket(0x10, fzString("MQTT"), []byte{9, 0x02}, fzU16(30), fzString("seed")),
		"empty-id-not-clean":     fzConnect("", false, 30),
		"reserved-flag-connect":  fzPacket(0x10, fzString("MQTT"), []byte{4, 0x03}, fzU16(30), fzString("seed")),
		"reserved-type-0":        fzConcat(connect, []byte{0x00, 0}),
		"auth-in-v4":             fzConcat(connect, []byte{0xf0, 0}),
		"subscribe-no-filters":   fzConcat(connect, fzPacket(0x82, fzU16(1))),
		"subscribe-bad-flags":    fzConcat(connect, fzPacket(0x80, fzU16(1), fzString("a/b"), []byte{0})),
		"pubrel-unknown-id":      fzConcat(connect, []byte{0x62, 2, 0x12, 0x34}),
		"packet-id-zero":         fzConcat(connect, fzPublish(1, 0, "a/b", "x")),
		"password-without-user":  fzPacket(0x10, fzString("MQTT"), []byte{4, 0x42}, fzU16(30), fzString("seed"), fzString("secret")),
	}
}

// addSeeds adds the seed corpus to f. The TCP target reads testdata/fuzz/FuzzBrokerTCP by itself;
// the pipe target (fromFiles) adds the same files, so both share one corpus.
func addSeeds(f *testing.F, fromFiles bool) {
	if !fromFiles {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzBrokerTCP")
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatalf("seed corpus: %v", err)
		}
		data, err := parseCorpusFile(raw)
		if err != nil {
			f.Fatalf("seed corpus %s: %v", e.Name(), err)
		}
		f.Add(data)
	}
}

const corpusHeader = "go test fuzz v1\n"

// corpusFile is the file format of go test's fuzz corpus for one []byte argument.
func corpusFile(data []byte) []byte {
	return []byte(corpusHeader + "[]byte(" + strconv.Quote(string(data)) + ")\n")
}

func parseCorpusFile(raw []byte) ([]byte, error) {
	s, ok := strings.CutPrefix(string(raw), corpusHeader)
	if !ok {
		return nil, errors.New("not a go test fuzz v1 file")
	}
	s, ok = strings.CutPrefix(strings.TrimSpace(s), "[]byte(")
	if !ok || !strings.HasSuffix(s, ")") {
		return nil, errors.New("not a single []byte value")
	}
	v, err := strconv.Unquote(strings.TrimSuffix(s, ")"))
	return []byte(v), err
}

// TestSeedCorpus checks that testdata/fuzz/FuzzBrokerTCP holds every seed of seedInputs;
// MQTT_UPDATE_SEEDS=1 writes them.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzBrokerTCP")
	update := os.Getenv("MQTT_UPDATE_SEEDS") == "1"
	for name, data := range seedInputs() {
		path := filepath.Join(dir, name)
		if update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, corpusFile(data), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s missing (MQTT_UPDATE_SEEDS=1 go test -run TestSeedCorpus writes it): %v", name, err)
			continue
		}
		got, err := parseCorpusFile(raw)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("seed file %s is not seedInputs()[%q] (MQTT_UPDATE_SEEDS=1 rewrites it): %v", path, name, err)
		}
	}
}

// TestClientGoroutinesSeen guards the leak check: if mochi renamed its connection functions,
// clientGoroutines would find nothing and every leak would pass unseen.
func TestClientGoroutinesSeen(t *testing.T) {
	b := startFuzzBroker(t)
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(fuzzDeadline))
	if _, err := conn.Write(fzConnect("held", true, 30)); err != nil {
		t.Fatal(err)
	}
	if _, err := fzReadPacket(conn); err != nil {
		t.Fatalf("CONNACK: %v", err)
	}
	if got := len(clientGoroutines()); got != len(clientGoroutineMarks) {
		t.Fatalf("one connected client: found %d connection goroutines, want %d", got, len(clientGoroutineMarks))
	}
	_ = conn.Close()
	if err := waitNoClientGoroutines(fuzzDeadline); err != nil {
		t.Fatal(err)
	}
}
