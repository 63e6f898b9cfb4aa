package mqttclient

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"mqttdemo/shared/config"
	"mqttdemo/shared/console"
)

// TestReconnectCarriesPublishOnce drives paho v1.5.1 into the race that printed a QoS 2
// message twice across network cuts: Publish calls wait while the connection is stuck, the
// connection drops, and after the reconnect paho sends each of them from Publish and again,
// marked DUP, from its store. A broker that has finished the first exchange takes the second
// copy for a new message. With KeepReleases the new connection carries each PUBLISH once.
// Without it this test fails, except when paho happens to drain all 8 waiting Publish calls
// into the dead connection (its select picks at random: about one run in 256).
func TestReconnectCarriesPublishOnce(t *testing.T) {
	const waiting = 8 // Publish calls blocked when the connection drops
	b := startBroker(t)
	cfg := &ClientConfig{Brokers: config.NewStringList(config.CheckBrokerURL, "tcp://"+b.l.Addr().String()), ID: "twice"}
	opts, err := cfg.Options() // no keep-alive: only our packets on the wire
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(mqtt.NewOrderedMemoryStore())
	opts.SetStore(store)
	KeepReleases(opts, store)
	// The first connection writes its CONNECT, then every write waits until paho closes it.
	open := opts.CustomOpenConnectionFn
	var once sync.Once
	opts.SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		c, err := open(u, o)
		once.Do(func() { c = &stuckConn{Conn: c, closed: make(chan struct{})} })
		return c, err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := Connect(ctx, opts, console.New(discard{}, false))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(0)

	client.Publish("t", 2, false, "stuck in the write")
	client.Publish("t", 2, false, "taken by paho, not written")
	for i := range waiting {
		go client.Publish("t", 2, false, fmt.Sprint("waiting ", i))
	}
	waitFor(t, func() bool { return len(store.All()) == 2+waiting }, "every message stored")
	b.cut()
	waitFor(t, func() bool { return len(store.All()) == 0 }, "every message acknowledged after the reconnect")
	client.Disconnect(250)
	counts := b.publishes(t)
	if len(counts) != 2+waiting {
		t.Errorf("the second connection carried %d messages, want %d", len(counts), 2+waiting)
	}
	for id, n := range counts {
		if n > 1 {
			t.Errorf("the second connection carried the PUBLISH of message %d %d times", id, n)
		}
	}
}

// stuckConn lets one write through (CONNECT); the others wait until the connection is closed.
type stuckConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	closed chan struct{}
	close  sync.Once
}

func (c *stuckConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	first := c.writes == 1
	c.mu.Unlock()
	if !first {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *stuckConn) Close() error {
	c.close.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// fakeBroker accepts two connections: the first it answers CONNACK and cuts when told; on the
// second it answers PUBLISH (QoS 2) with PUBREC and PUBREL with PUBCOMP, counting the PUBLISH
// packets per id until the client disconnects.
type fakeBroker struct {
	l      net.Listener
	first  chan net.Conn
	counts chan map[uint16]int
	mu     sync.Mutex
	conns  []net.Conn // closed when the test ends
}

func startBroker(t *testing.T) *fakeBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{l: l, first: make(chan net.Conn, 1), counts: make(chan map[uint16]int, 1)}
	t.Cleanup(func() {
		l.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			c.Close()
		}
	})
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			if _, err := packets.ReadPacket(c); err != nil { // CONNECT
				return
			}
			ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
			ack.SessionPresent = n > 0
			if ack.Write(c) != nil {
				return
			}
			if n == 0 {
				b.first <- c
				continue
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *fakeBroker) cut() {
	c := <-b.first
	c.Close()
}

func (b *fakeBroker) serve(c net.Conn) {
	counts := make(map[uint16]int)
	defer func() { b.counts <- counts }()
	for {
		p, err := packets.ReadPacket(c)
		if err != nil {
			return
		}
		var answer packets.ControlPacket
		switch p := p.(type) {
		case *packets.PublishPacket:
			counts[p.MessageID]++
			rec := packets.NewControlPacket(packets.Pubrec).(*packets.PubrecPacket)
			rec.MessageID = p.MessageID
			answer = rec
		case *packets.PubrelPacket:
			comp := packets.NewControlPacket(packets.Pubcomp).(*packets.PubcompPacket)
			comp.MessageID = p.MessageID
			answer = comp
		case *packets.DisconnectPacket:
			return
		default:
			continue
		}
		if answer.Write(c) != nil {
			return
		}
	}
}

// publishes returns how many times the second connection carried each PUBLISH.
func (b *fakeBroker) publishes(t *testing.T) map[uint16]int {
	t.Helper()
	select {
	case c := <-b.counts:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not disconnect")
		return nil
	}
}

// waitFor polls cond until it holds, failing the test after 20 seconds.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
