package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/rawmqtt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
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

// FuzzBrokerPipe runs the same inputs through the broker's connection path in-process (the
// connection layer and mochi's EstablishConnection on an in-memory pipe): the packet decoding,
// validation and our hooks, with debug logging on, without the network.
func FuzzBrokerPipe(f *testing.F) {
	addSeeds(f, true)
	b := startFuzzBroker(f)
	establish := connectionPath(b)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- establish("fuzz", server) }()
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

// connectionPath is how b's listeners hand mochi a connection: through the connection layer,
// whose watches keep some malformed packets from mochi's decoder (package limits).
func connectionPath(b *Broker) listeners.EstablishFn {
	if b.flow == nil {
		return b.server.EstablishConnection
	}
	var l served
	b.flow.Listener(&l).Serve(b.server.EstablishConnection)
	return l.establish
}

// served is a listener that keeps what it is told to serve connections with.
type served struct {
	listeners.Listener // not called
	establish          listeners.EstablishFn
}

func (l *served) Serve(establish listeners.EstablishFn) { l.establish = establish }

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
	if _, err := conn.Write(rawmqtt.Connect{ID: id, Clean: true, KeepAlive: 30}.Encode()); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	ack, err := rawmqtt.Read(conn)
	if err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		return fmt.Errorf("CONNACK: got % x, %v", ack, err)
	}
	if _, err := conn.Write(rawmqtt.Subscribe(1, topic, 0)); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	suback, err := rawmqtt.Read(conn)
	if err != nil || !bytes.Equal(suback, []byte{0x90, 3, 0, 1, 0}) {
		return fmt.Errorf("SUBACK: got % x, %v", suback, err)
	}
	want := rawmqtt.Publish(topic, 0, 0, []byte(payload))
	if _, err := conn.Write(want); err != nil {
		return fmt.Errorf("send PUBLISH: %w", err)
	}
	// A retained message an earlier input left on a matching topic may come first.
	for {
		pk, err := rawmqtt.Read(conn)
		if err != nil {
			return fmt.Errorf("wait for own message: %w", err)
		}
		if bytes.Equal(pk, want) {
			break
		}
	}
	_, _ = conn.Write(rawmqtt.Disconnect())
	if _, err := io.Copy(io.Discard, conn); err != nil {
		return fmt.Errorf("broker did not close after DISCONNECT: %w", err)
	}
	return nil
}

func fzIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func fzConcat(pks ...[]byte) []byte { return bytes.Join(pks, nil) }

// seedInputs are the malformed (and a few well-formed) inputs every run tries; TestSeedCorpus
// keeps testdata/fuzz/FuzzBrokerTCP in step with them.
func seedInputs() map[string][]byte {
	seed := rawmqtt.Connect{ID: "seed", Clean: true, KeepAlive: 30}
	connect := seed.Encode()
	will := rawmqtt.Connect{ID: "seed-will", Clean: true, KeepAlive: 30, WillTopic: "will/topic", WillPayload: []byte("gone"), WillQoS: 1}
	willQoS3 := will
	willQoS3.WillQoS = 3
	v5 := rawmqtt.Connect{ID: "seed-v5", Version: 5, Clean: true, KeepAlive: 30, Properties: packets.Properties{
		SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true, ReceiveMaximum: 10}}
	v5Will := v5
	v5Will.ID, v5Will.WillTopic, v5Will.WillPayload = "seed-v5-will", "will/topic", []byte("gone")
	level9 := seed
	level9.Version = 9
	mqtx := seed.Packet()
	mqtx.Connect.ProtocolName = []byte("MQTX")
	pub := func(topic string) []byte { return rawmqtt.Publish(topic, 0, 0, []byte("x")) }
	return map[string][]byte{
		"empty": {},
		// A well-formed session, so the fuzzer mutates from packets the broker accepts.
		"valid-session": fzConcat(connect,
			rawmqtt.Subscribe(1, "a/+", 2),
			rawmqtt.Publish("a/b", 0, 0, []byte("zero")),
			rawmqtt.Publish("a/b", 1, 2, []byte("one")),
			rawmqtt.Publish("a/b", 2, 3, []byte("two")),
			rawmqtt.Ack(packets.Pubrel, 3),
			rawmqtt.Pingreq(),
			rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: 4,
				Filters: packets.Subscriptions{{Filter: "a/+"}}}),
			rawmqtt.Disconnect()),
		"valid-v5-connect-properties": v5.Encode(),
		// MQTT 5 SUBSCRIBE options: missing (mochi's decoder panicked, mochi-mqtt/server#501),
		// with reserved bits; a one-byte DISCONNECT asking for the will.
		"v5-subscribe-without-options":         fzConcat(v5.Encode(), rawmqtt.Frame(0x82, []byte{0, 1, 0}, rawmqtt.String("a/b"))),
		"v5-subscribe-empty-filter-no-options": fzConcat(v5.Encode(), rawmqtt.Frame(0x82, []byte{0, 1, 0}, []byte{0, 0})),
		"v5-subscribe-reserved-options":        fzConcat(v5.Encode(), rawmqtt.Frame(0x82, []byte{0, 1, 0}, rawmqtt.String("a/b"), []byte{0xc1})),
		"v5-disconnect-with-will":              fzConcat(v5Will.Encode(), []byte{0xe0, 1, 0x04}),
		// A length of six bytes, which mochi reads, then the SUBSCRIBE above.
		"v5-long-length-then-subscribe": fzConcat(v5.Encode(), []byte{0xc0, 0x80, 0x80, 0x80, 0x80, 0x00},
			rawmqtt.Frame(0x82, []byte{0, 1, 0}, rawmqtt.String("a/b"))),
		"will-then-vanish": will.Encode(),
		// Truncated: the connection ends inside a packet.
		"truncated-connect":           connect[:9],
		"truncated-remaining-length":  {0x10, 0xff, 0xff},
		"truncated-publish":           fzConcat(connect, rawmqtt.Publish("a/b", 1, 1, []byte("payload"))[:8]),
		"truncated-subscribe-options": fzConcat(connect, rawmqtt.Frame(0x82, []byte{0, 1}, rawmqtt.String("a/b"))),
		// Oversized: a remaining length past the 4-byte maximum, the largest legal length with
		// no body, and a real 16 KiB message.
		"remaining-length-5-bytes": {0x10, 0xff, 0xff, 0xff, 0xff, 0x01},
		"remaining-length-256mib":  fzConcat(connect, []byte{0x30, 0xff, 0xff, 0xff, 0x7f, 0, 3, 'a', '/', 'b'}),
		"publish-16kib":            fzConcat(connect, rawmqtt.Publish("a/b", 0, 0, bytes.Repeat([]byte("x"), 16<<10))),
		// Wrong remaining length: shorter and longer than the packet's content.
		"connect-length-short":      append([]byte{0x10, 10}, connect[2:]...),
		"connect-length-long":       append([]byte{0x10, byte(len(connect) + 20)}, connect[2:]...),
		"publish-length-short":      fzConcat(connect, []byte{0x30, 2, 0, 3, 'a', '/', 'b'}),
		"string-longer-than-packet": fzConcat(connect, rawmqtt.Frame(0x30, []byte{0xff, 0xff}, []byte("a/b"))),
		// Bad UTF-8 and forbidden characters in names.
		"bad-utf8-topic":      fzConcat(connect, pub("a/\xff\xfe")),
		"nul-in-topic":        fzConcat(connect, pub("a/\x00b")),
		"bad-utf8-filter":     fzConcat(connect, rawmqtt.Subscribe(1, "\xc3\x28/#", 0)),
		"bad-utf8-client-id":  rawmqtt.Connect{ID: "\xed\xa0\x80", Clean: true, KeepAlive: 30}.Encode(), // a UTF-16 surrogate
		"wildcard-in-publish": fzConcat(connect, pub("a/#")),
		"bad-filter":          fzConcat(connect, rawmqtt.Subscribe(1, "a/#/b", 0), rawmqtt.Subscribe(2, "a+", 0)),
		// Invalid QoS 3, in each place a QoS appears.
		"publish-qos-3": fzConcat(connect, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 3},
			TopicName: "a/b", PacketID: 1, Payload: []byte("x")})),
		"subscribe-qos-3": fzConcat(connect, rawmqtt.Subscribe(1, "a/b", 3)),
		"will-qos-3":      willQoS3.Encode(),
		// Protocol order violations.
		"second-connect":         fzConcat(connect, rawmqtt.Connect{ID: "seed-2", Clean: true, KeepAlive: 30}.Encode()),
		"publish-before-connect": pub("a/b"),
		"connack-from-client":    fzConcat(connect, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}})),
		"unknown-protocol-name":  rawmqtt.Encode(mqtx),
		"protocol-level-9":       level9.Encode(),
		"empty-id-not-clean":     rawmqtt.Connect{KeepAlive: 30}.Encode(),
		"reserved-flag-connect":  rawmqtt.Frame(0x10, rawmqtt.String("MQTT"), []byte{4, 0x03, 0, 30}, rawmqtt.String("seed")),
		"reserved-type-0":        fzConcat(connect, rawmqtt.Frame(0x00)),
		"auth-in-v4":             fzConcat(connect, rawmqtt.Frame(0xf0)),
		"subscribe-no-filters":   fzConcat(connect, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1})),
		"subscribe-bad-flags":    fzConcat(connect, rawmqtt.Frame(0x80, []byte{0, 1}, rawmqtt.String("a/b"), []byte{0})),
		"pubrel-unknown-id":      fzConcat(connect, rawmqtt.Ack(packets.Pubrel, 0x1234)),
		"packet-id-zero":         fzConcat(connect, rawmqtt.Frame(0x32, rawmqtt.String("a/b"), []byte{0, 0}, []byte("x"))),
		"password-without-user":  rawmqtt.Connect{ID: "seed", Clean: true, KeepAlive: 30, Password: "secret"}.Encode(),
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
	if _, err := conn.Write(rawmqtt.Connect{ID: "held", Clean: true, KeepAlive: 30}.Encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := rawmqtt.Read(conn); err != nil {
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
