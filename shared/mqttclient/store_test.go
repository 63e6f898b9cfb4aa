package mqttclient

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"mqttdemo/shared/cli"
	"mqttdemo/shared/config"
	"mqttdemo/shared/console"
)

func publishPacket(id uint16, payload string) *packets.PublishPacket {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName, p.Payload = 1, id, "t", []byte(payload)
	return p
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestStoreAcked follows paho's use of the store for an outgoing QoS 2 message: PUBLISH kept,
// replaced by PUBREL on PUBREC, deleted on PUBCOMP; only the delete is the acknowledgement.
func TestStoreAcked(t *testing.T) {
	s := NewStore(mqtt.NewMemoryStore())
	s.Open()
	s.Put("o.5", publishPacket(5, "x"))
	ch, ok := s.Acked(5)
	if !ok || isClosed(ch) {
		t.Fatal("a stored message must be waiting")
	}
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 5
	s.Put("o.5", rel) // PUBREC came: not acknowledged yet
	if isClosed(ch) {
		t.Fatal("PUBREC is not the end of QoS 2")
	}
	s.Del("i.5") // an incoming message with the same id is another matter
	if isClosed(ch) {
		t.Fatal("deleting i.5 acknowledged o.5")
	}
	s.Del("o.5")
	if !isClosed(ch) {
		t.Fatal("PUBCOMP (delete) did not acknowledge")
	}
	if _, ok := s.Acked(5); ok {
		t.Error("an acknowledged id is still waiting")
	}

	s.Put("o.6", publishPacket(6, "y"))
	ch6, _ := s.Acked(6)
	s.Reset() // a clean session starts: nothing left to wait for
	if !isClosed(ch6) {
		t.Error("Reset left a message waiting")
	}
}

func TestStoreRelease(t *testing.T) {
	s := NewStore(mqtt.NewMemoryStore())
	s.Open()
	var released []uint16
	s.OnRelease(func(id uint16) { released = append(released, id) })
	in := publishPacket(7, "z")
	in.Qos = 2
	s.Put("i.7", in)
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 7
	s.Put("o.7", rel) // our own PUBREL: not a release of an incoming message
	s.Put("i.7", rel)
	if len(released) != 1 || released[0] != 7 {
		t.Errorf("released %v, want [7]", released)
	}
}

// TestFileStoreOutgoing: what one run leaves in a file store, the next finds.
func TestFileStoreOutgoing(t *testing.T) {
	dir := t.TempDir()
	first, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	first.Open()
	first.Put("o.3", publishPacket(3, "three"))
	first.Put("o.4", publishPacket(4, "four"))
	first.Del("o.3")
	first.Close()

	next, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := next.Outgoing()
	if len(got) != 1 || got[0] != (Stored{ID: 4, Topic: "t", Payload: "four", QoS: 1}) {
		t.Fatalf("Outgoing() = %+v, want message 4 only", got)
	}
	if ch, ok := next.Acked(4); !ok || isClosed(ch) {
		t.Error("a message found in the store must be waiting for its acknowledgement")
	}
}

func TestNewFileStoreDirectory(t *testing.T) {
	dir := t.TempDir() + "/new/store"
	if _, err := NewFileStore(dir); err != nil {
		t.Fatalf("a missing directory should be made: %v", err)
	}
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileStore(file + "/store"); err == nil || !strings.HasPrefix(err.Error(), "-store") {
		t.Errorf("a store under a plain file: %v, want an error naming -store", err)
	}
}

func TestParseKey(t *testing.T) {
	for _, c := range []struct {
		key     string
		id      uint16
		out, ok bool
	}{
		{"o.1", 1, true, true},
		{"i.65535", 65535, false, true},
		{"o.65536", 0, false, false},
		{"x.1", 0, false, false},
		{"o", 0, false, false},
		{"o.-1", 0, false, false},
	} {
		id, out, ok := parseKey(c.key)
		if id != c.id || out != c.out || ok != c.ok {
			t.Errorf("parseKey(%q) = %d, %v, %v", c.key, id, out, ok)
		}
	}
}

// TestConnectRefused: a CONNACK refusal ends Connect at once with a *RefusedError.
func TestConnectRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 256)
			_, _ = c.Read(buf) // CONNECT
			_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x05})
			c.Close()
		}
	}()
	cfg := &ClientConfig{Brokers: config.NewStringList(config.CheckBrokerURL, "tcp://"+l.Addr().String()), ID: "x", Clean: true, KeepAlive: config.Duration(time.Second)}
	opts, err := cfg.Options()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = Connect(ctx, opts, console.New(new(discard), false))
	var refused *cli.RefusedError
	if !errors.As(err, &refused) || refused.Code != 5 {
		t.Fatalf("Connect = %v, want a refusal with code 5", err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestPahoURL(t *testing.T) {
	for in, want := range map[string]string{
		"mqtt://h:1883":  "tcp://h:1883",
		"mqtts://h:8883": "ssl://h:8883",
		"tls://h:8883":   "ssl://h:8883",
		"tcp://h:1":      "tcp://h:1",
		"wss://h:443/mq": "wss://h:443/mq",
	} {
		if got := pahoURL(in); got != want {
			t.Errorf("pahoURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStorePublishCopies: paho writes the packet it stored (setting its length field) while its
// resume, after a reconnect, sets DUP on the packet it gets from the store
// (eclipse-paho/paho.mqtt.golang#703): the store keeps a copy of its own and hands out copies.
func TestStorePublishCopies(t *testing.T) {
	s := NewStore(mqtt.NewOrderedMemoryStore())
	s.Open()
	p := publishPacket(1, "x")
	s.Put("o.1", p)
	p.Dup = true // paho's packet, changed after Put
	got := s.Get("o.1").(*packets.PublishPacket)
	if got.Dup {
		t.Error("the store kept the packet given to Put")
	}
	got.Dup = true
	if again := s.Get("o.1").(*packets.PublishPacket); again.Dup {
		t.Error("Get returned the stored packet itself")
	}
	if got.MessageID != 1 || string(got.Payload) != "x" {
		t.Errorf("Get = %v, want message 1", got)
	}
	if s.Get("o.2") != nil {
		t.Error("Get of a missing key is not nil")
	}
}
