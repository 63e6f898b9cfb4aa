// Package bare is mochi as it comes, served on a loopback port, and the steps of a raw MQTT
// client to talk to it: what the canaries need to show a mochi flaw without the broker's mends.
// Only tests import it.
package bare

import (
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// Wait bounds each wait of a canary, and each dial, read and write of a connection; a canary
// waits that long only when mochi changed.
const Wait = 5 * time.Second

// New is mochi with opts (default options when nil) and hooks, in that order and no other,
// logging nowhere; not serving yet.
func New(tb testing.TB, opts *mqtt.Options, hooks ...mqtt.Hook) *mqtt.Server {
	tb.Helper()
	if opts == nil {
		opts = new(mqtt.Options)
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	server := mqtt.New(opts)
	addHooks(tb, server, hooks)
	return server
}

// Listen serves server on a loopback port until the test ends, and returns the address.
func Listen(tb testing.TB, server *mqtt.Server) string {
	tb.Helper()
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		tb.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeWithin(tb, server, Wait) })
	return tcp.Address()
}

// Serve serves mochi with opts (default options when nil), the test's hooks, then
// auth.AllowHook (mochi refuses every connection without an auth hook), on a loopback port.
func Serve(tb testing.TB, opts *mqtt.Options, hooks ...mqtt.Hook) (*mqtt.Server, string) {
	tb.Helper()
	return ServeWith(tb, opts, func(*mqtt.Server) []mqtt.Hook { return hooks })
}

// ServeWith is Serve with hooks that need the server.
func ServeWith(tb testing.TB, opts *mqtt.Options, hooks func(*mqtt.Server) []mqtt.Hook) (*mqtt.Server, string) {
	tb.Helper()
	server := New(tb, opts)
	addHooks(tb, server, append(hooks(server), new(auth.AllowHook)))
	return server, Listen(tb, server)
}

func addHooks(tb testing.TB, server *mqtt.Server, hooks []mqtt.Hook) {
	tb.Helper()
	for _, h := range hooks {
		if err := server.AddHook(h, nil); err != nil {
			tb.Fatal(err)
		}
	}
}

// Dial opens a connection to addr, closed at the end of the test, and sends the CONNECT c
// (keep-alive 60 s when c has none); the CONNACK is for the caller to read.
func Dial(tb testing.TB, addr string, c rawmqtt.Connect) net.Conn {
	tb.Helper()
	if c.KeepAlive == 0 {
		c.KeepAlive = 60
	}
	return DialBytes(tb, addr, c.Encode())
}

// DialBytes connects to addr and sends first: a CONNECT that rawmqtt.Connect cannot say.
func DialBytes(tb testing.TB, addr string, first []byte) net.Conn {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, Wait)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(Wait))
	Write(tb, conn, first)
	return conn
}

// Connect is Dial, then reads a CONNACK that accepts the connection.
func Connect(tb testing.TB, addr string, c rawmqtt.Connect) net.Conn {
	tb.Helper()
	conn := Dial(tb, addr, c)
	if pk := Read(tb, conn); pk[0] != 0x20 || pk[3] != 0 {
		tb.Fatalf("connect %s: got % x, want CONNACK accepted", c.ID, pk)
	}
	return conn
}

// Write writes the packet pk.
func Write(tb testing.TB, conn net.Conn, pk []byte) {
	tb.Helper()
	if _, err := conn.Write(pk); err != nil {
		tb.Fatal(err)
	}
}

// Read reads the next packet, raw.
func Read(tb testing.TB, conn net.Conn) []byte {
	tb.Helper()
	pk, err := rawmqtt.Read(conn)
	if err != nil {
		tb.Fatal(err)
	}
	return pk
}

// ReadDecoded reads the next packet, decoded as MQTT 3.1.1.
func ReadDecoded(tb testing.TB, conn net.Conn) packets.Packet { return ReadDecodedV(tb, conn, 4) }

// ReadDecodedV reads the next packet of a client speaking version (4 or 5), decoded.
func ReadDecodedV(tb testing.TB, conn net.Conn, version byte) packets.Packet {
	tb.Helper()
	raw := Read(tb, conn)
	pk, err := rawmqtt.Decode(raw, version)
	if err != nil {
		tb.Fatalf("decode % x: %v", raw, err)
	}
	return pk
}

// Exchange writes pk and reads packets until one whose first byte is want.
func Exchange(tb testing.TB, conn net.Conn, pk []byte, want byte) {
	tb.Helper()
	Write(tb, conn, pk)
	for range 100 {
		if Read(tb, conn)[0] == want {
			return
		}
	}
	tb.Fatalf("no packet % x came", want)
}

// ReadUntil reads MQTT 3.1.1 packets until a PUBLISH with payload last, and returns the
// payloads of the PUBLISH packets before it.
func ReadUntil(tb testing.TB, conn net.Conn, last string) []string {
	tb.Helper()
	var got []string
	for range 100 {
		pk := ReadDecoded(tb, conn)
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if string(pk.Payload) == last {
			return got
		}
		got = append(got, string(pk.Payload))
	}
	tb.Fatalf("%q never came (got %q)", last, got)
	return nil
}

// closeWithin closes server, or gives up after limit: bare mochi's Close can deadlock when a
// client leaves meanwhile (mochifix/doc.go, "Close deadlocks"), and a canary's clean-up must not
// hang the test binary.
func closeWithin(tb testing.TB, server *mqtt.Server, limit time.Duration) {
	done := make(chan struct{})
	go func() {
		_ = server.Close()
		close(done)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		tb.Logf("bare mochi's Close did not end within %s (its clients' lock taken twice): left behind", limit)
	}
}
