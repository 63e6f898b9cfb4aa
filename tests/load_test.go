package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/broker"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// TestLoadThousandClients: 1,000 clients connected at once each subscribe to their own topic
// and publish a fixed number of QoS 1 messages to their neighbour's. Every message must arrive
// exactly once and in order. This is done twice: once they have all gone, the broker's heap must
// not have grown from the first round to the second (a leak grows it by the same amount each
// round; what the first round leaves is the runtime's high-water mark: goroutine descriptors
// and map buckets, reused by the second).
//
// The broker runs in this process so that its heap can be measured exactly after a GC; the
// clients are bare MQTT connections with one goroutine each (paho needs five or six, and the
// race detector allows 8,128 goroutines in all).
func TestLoadThousandClients(t *testing.T) {
	const clients, perClient = 1000, 20
	cfg := broker.Config{Listen: "127.0.0.1:0", LogLevel: slog.LevelWarn, LogFormat: "json", Limits: limits.DefaultLimits()}
	var logs harness.Output
	b, err := broker.New(cfg, broker.NewLogger(cfg, &logs, noEnv), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	goroutinesBefore := runtime.NumGoroutine()
	heapBefore := heapAfterGC()
	var heapAfter [2]uint64
	for round := range 2 {
		loadRound(t, b.Addr(), clients, perClient)
		harness.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+5 },
			"the broker's connection goroutines to end (%d before, %d now)", goroutinesBefore, runtime.NumGoroutine())
		heapAfter[round] = heapAfterGC()
	}
	t.Logf("broker heap: %.1f MiB before, %.1f MiB after the first round, %.1f MiB after the second",
		mib(heapBefore), mib(heapAfter[0]), mib(heapAfter[1]))
	if grown := int64(heapAfter[1]) - int64(heapAfter[0]); grown > 512<<10 {
		t.Errorf("broker heap grew by %.2f MiB in a second round of %d clients (leak?)", mib(uint64(grown)), clients)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("broker logged errors under load:\n%s", logs.String())
	}
}

// loadRound connects the clients, has each publish perClient QoS 1 messages to its neighbour,
// checks every message, and disconnects them.
func loadRound(t *testing.T, addr string, clients, perClient int) {
	start := time.Now()
	cs := make([]*loadClient, clients)
	parallel(t, clients, func(i int) error {
		c, err := dialLoadClient(addr, fmt.Sprintf("load-%d", i))
		cs[i] = c
		return err
	})
	connected := time.Since(start)
	parallel(t, clients, func(i int) error { return cs[i].subscribe(fmt.Sprintf("load/%d", i)) })

	start = time.Now()
	parallel(t, clients, func(i int) error {
		for k := range perClient {
			if err := cs[i].publish(fmt.Sprintf("load/%d", (i+1)%clients), k+1, fmt.Sprintf("%d:%d", i, k)); err != nil {
				return err
			}
		}
		return nil
	})
	harness.Eventually(t, func() bool {
		for _, c := range cs {
			if c.acked.Load() < int64(perClient) || c.count() < perClient {
				return false
			}
		}
		return true
	}, "every client to have its %d publishes acknowledged and %d messages delivered", perClient, perClient)
	delivered := time.Since(start)

	// Accounting: client i receives exactly i-1's messages, each once, in order.
	for i, c := range cs {
		from := (i + clients - 1) % clients
		var want []string
		for k := range perClient {
			want = append(want, fmt.Sprintf("%d:%d", from, k))
		}
		if got := c.payloads(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("client %d received %v, want %v", i, got, want)
		}
	}
	parallel(t, clients, func(i int) error { return cs[i].disconnect() })
	t.Logf("%d clients connected in %s; %d QoS 1 messages acknowledged and delivered in %s (%.0f msg/s), each once and in order",
		clients, connected.Round(time.Millisecond), clients*perClient, delivered.Round(time.Millisecond),
		float64(clients*perClient)/delivered.Seconds())
}

// TestLoadIdleConnections holds 10,000 idle MQTT connections to the real broker binary, checks
// that it still serves a new client, and reports its memory per connection.
func TestLoadIdleConnections(t *testing.T) {
	const idle = 10000
	if os.Getenv("MQTT_SOAK") != "1" {
		t.Skip("holds 10,000 connections: set MQTT_SOAK=1")
	}
	if raceDetector {
		t.Skip("a -race broker cannot run 20,000 goroutines (the race detector's limit is 8,128): run without -race")
	}
	raiseFileLimit(t, idle+200) // each process holds one end; the broker inherits the limit
	server, url := harness.StartServer(t, nil)
	addr := hostPort(url)
	rssBefore := rssKiB(t, server.Cmd.Process.Pid)

	start := time.Now()
	conns := make([]net.Conn, idle)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	parallel(t, idle, func(i int) error {
		c, err := connectRaw(addr, fmt.Sprintf("idle-%d", i))
		conns[i] = c
		return err
	})
	t.Logf("%d idle connections established in %s", idle, time.Since(start).Round(time.Millisecond))

	// Still serving: a new client subscribes, publishes and receives.
	c, err := dialLoadClient(addr, "late-client")
	if err != nil {
		t.Fatalf("a new client cannot connect with %d idle connections held: %v", idle, err)
	}
	if err := c.subscribe("late-client/t"); err != nil {
		t.Fatal(err)
	}
	if err := c.publish("late-client/t", 1, "hello"); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, func() bool { return c.count() == 1 }, "the late client's own message")
	rssHeld := rssKiB(t, server.Cmd.Process.Pid)
	t.Logf("broker RSS: %d MiB before, %d MiB with %d idle connections (%.1f KiB each)",
		rssBefore/1024, rssHeld/1024, idle, float64(rssHeld-rssBefore)/idle)
	if server.Exited() {
		t.Fatal("the broker exited under the load")
	}
	if n := len(server.Out.Lines(re(`DISCONNECTED\s+client=idle-`))); n > 0 {
		t.Errorf("the broker dropped %d idle connections while they were held", n)
	}
	for i, conn := range conns {
		conn.Close()
		conns[i] = nil
	}
	_ = c.disconnect()
	server.WaitCount(t, `DISCONNECTED\s+client=idle-\d+ .*reason=connection-lost`, idle)
	if n := len(server.Out.Lines(re(`ERROR`))); n > 0 {
		t.Errorf("broker logged %d errors", n)
	}
}

// parallel runs f(0) … f(n-1) on 32 goroutines and fails the test on the first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		once     sync.Once
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("#%d: %w", i, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// rssKiB is a process's resident memory from /proc.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// loadClient is a bare MQTT 3.1.1 client: one goroutine reads, acknowledges QoS 1 messages and
// counts acknowledgements; writes are serialised by mu.
type loadClient struct {
	conn   net.Conn
	mu     sync.Mutex // serialises writes
	acked  atomic.Int64
	subbed chan struct{}
	gotMu  sync.Mutex
	got    []string
	done   chan struct{}
}

func dialLoadClient(addr, id string) (*loadClient, error) {
	conn, err := connectRaw(addr, id)
	if err != nil {
		return nil, err
	}
	c := &loadClient{conn: conn, subbed: make(chan struct{}, 1), done: make(chan struct{})}
	go c.read()
	return c, nil
}

// connectRaw opens an MQTT connection (clean session, no keep-alive) and checks the CONNACK.
func connectRaw(addr, id string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, harness.Timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(harness.Timeout))
	if _, err := conn.Write(rawmqtt.Connect{ID: id, Clean: true}.Encode()); err != nil {
		conn.Close()
		return nil, err
	}
	ack, err := rawmqtt.Read(conn)
	if err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		conn.Close()
		return nil, fmt.Errorf("CONNACK % x: %v", ack, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

func (c *loadClient) write(pk []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(harness.Timeout))
	_, err := c.conn.Write(pk)
	return err
}

func (c *loadClient) read() {
	defer close(c.done)
	for {
		raw, err := rawmqtt.Read(c.conn)
		if err != nil {
			return
		}
		pk, err := rawmqtt.Decode(raw, 4)
		if err != nil {
			return
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			if pk.FixedHeader.Qos > 0 && c.write(rawmqtt.Ack(packets.Puback, pk.PacketID)) != nil {
				return
			}
			c.gotMu.Lock()
			c.got = append(c.got, string(pk.Payload))
			c.gotMu.Unlock()
		case packets.Puback:
			c.acked.Add(1)
		case packets.Suback:
			c.subbed <- struct{}{}
		}
	}
}

func (c *loadClient) subscribe(filter string) error {
	if err := c.write(rawmqtt.Subscribe(1, filter, 1)); err != nil {
		return err
	}
	select {
	case <-c.subbed:
		return nil
	case <-c.done:
		return errors.New("connection closed before SUBACK")
	case <-time.After(harness.Timeout):
		return errors.New("no SUBACK")
	}
}

func (c *loadClient) publish(topic string, id int, payload string) error {
	return c.write(rawmqtt.Publish(topic, 1, uint16(id), []byte(payload)))
}

func (c *loadClient) count() int {
	c.gotMu.Lock()
	defer c.gotMu.Unlock()
	return len(c.got)
}

func (c *loadClient) payloads() []string {
	c.gotMu.Lock()
	defer c.gotMu.Unlock()
	return append([]string(nil), c.got...)
}

// disconnect sends DISCONNECT and waits for the broker to close the connection.
func (c *loadClient) disconnect() error {
	err := c.write(rawmqtt.Disconnect())
	select {
	case <-c.done:
	case <-time.After(harness.Timeout):
		err = errors.New("broker did not close the connection after DISCONNECT")
	}
	c.conn.Close()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
