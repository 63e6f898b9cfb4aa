package broker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestSessionTakeoverLosesNothing: a persistent subscriber comes back (its session taken over by
// the new connection) ten times while QoS 1 messages stream to it. Every message must
// reach it: mochi copies the old session's in-flight messages, then clears them, and a message
// queued to the old session in between, or by a publisher that had looked the old session up
// just before, was lost.
func TestSessionTakeoverLosesNothing(t *testing.T) {
	b, _ := startBroker(t, Config{})
	url := "tcp://" + b.Addr()
	var mu sync.Mutex
	seen := map[string]bool{}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("keeper").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		mu.Lock()
		seen[string(m.Payload())] = true
		mu.Unlock()
	})
	keeper := paho.NewClient(opts)
	mustWait(t, keeper.Connect(), "connect keeper")
	mustWait(t, keeper.Subscribe("stream", 1, nil), "subscribe")

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("streamer").SetProtocolVersion(4))
	mustWait(t, pub.Connect(), "connect publisher")
	defer pub.Disconnect(100)
	const n = 3000
	done := make(chan error, 1)
	go func() {
		var last paho.Token
		for i := 1; i <= n; i++ {
			last = pub.Publish("stream", 1, false, strconv.Itoa(i))
			if i%50 == 0 && !last.WaitTimeout(10*time.Second) { // keep the stream steady, not a burst
				done <- last.Error()
				return
			}
		}
		last.WaitTimeout(10 * time.Second)
		done <- last.Error()
	}()
	// Take the session over again and again while the stream runs: a new connection with the
	// same id, as a client reconnecting after a network cut does.
	for round := 0; round < 10; round++ {
		next := paho.NewClient(opts)
		// Fails now and then without the mochi fixes: a message overtook the CONNACK.
		mustWait(t, next.Connect(), "reconnect keeper")
		keeper = next
		// Let the stream reach the new connection before the next take-over, as a client that
		// reconnects after a network cut has some seconds between cuts.
		mu.Lock()
		before := len(seen)
		mu.Unlock()
		waitFor(t, "messages on the new connection", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) > before+20 || len(seen) == n
		})
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Without the take-over fixes about 70 of 3000 were lost here, and 0–2 with the first of them.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			var missing []int
			mu.Lock()
			for i := 1; i <= n && len(missing) < 20; i++ {
				if !seen[strconv.Itoa(i)] {
					missing = append(missing, i)
				}
			}
			mu.Unlock()
			t.Fatalf("%d of %d acknowledged messages reached the persistent subscriber; missing (first 20) %v", got, n, missing)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	keeper.Disconnect(100)
}

// TestTakeoverOfEndingSessionKeepsItsQueue: MQTT 5 clients whose sessions end at disconnect
// (expiry 0) are taken over by connections that keep a session, 200 times, 4 at a time. Each
// new connection must get the session and its queued message. mochi closes the old connection
// before it marks the session taken over, and the old connection's goroutine, waking in
// between, ended the session: the new connection got it empty.
func TestTakeoverOfEndingSessionKeepsItsQueue(t *testing.T) {
	b, _ := startBroker(t, Config{DataDir: t.TempDir()})
	pub := rawConnect(t, b.Addr(), "pub", true)
	var pubMu sync.Mutex
	var pubID uint16
	publish := func(topic string) error {
		pubMu.Lock()
		defer pubMu.Unlock()
		pubID = pubID%65535 + 1
		_, err := exchange(pub, rawmqtt.Publish(topic, 1, pubID, []byte("queued")), 0x40)
		return err
	}
	const rounds, parallel = 800, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lost []string
	for w := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds / parallel {
				id := fmt.Sprintf("ending-%d-%d", w, r)
				if err := takeOverEndingSession(b.Addr(), id, publish); err != nil {
					mu.Lock()
					lost = append(lost, id+": "+err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(lost) > 0 {
		t.Errorf("%d of %d take-overs lost the session or its message; first: %s", len(lost), rounds, lost[0])
	}
}

// takeOverEndingSession connects id with session expiry 0, subscribes at QoS 1, receives one
// message without acknowledging it, and takes the session over with a connection that keeps
// it: that one must be told the session is present and get the message again.
func takeOverEndingSession(addr, id string, publish func(topic string) error) error {
	topic := "e/" + id
	old, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer old.Close()
	if _, err := exchange(old, connectV5(id, true, 0), 0x20); err != nil {
		return err
	}
	if _, err := exchange(old, subscribeV5(topic), 0x90); err != nil {
		return err
	}
	if err := publish(topic); err != nil {
		return err
	}
	if pk, err := rawmqtt.Read(old); err != nil || pk[0]>>4 != 3 {
		return fmt.Errorf("old connection: % x %v", pk, err)
	}
	next, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer next.Close()
	ack, err := exchange(next, connectV5(id, false, 60), 0x20)
	if err != nil {
		return err
	}
	if ack[2]&1 != 1 {
		return errors.New("CONNACK without session present")
	}
	_ = next.SetDeadline(time.Now().Add(waitTimeout)) // 800 rounds under -race: one may wait long
	if pk, err := rawmqtt.Read(next); err != nil || pk[0]>>4 != 3 {
		return fmt.Errorf("no queued message again: % x %v", pk, err)
	}
	return nil
}

// exchange sends pk and reads the answer, which must be of type want (the first byte).
func exchange(conn net.Conn, pk []byte, want byte) ([]byte, error) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(pk); err != nil {
		return nil, err
	}
	got, err := rawmqtt.Read(conn)
	if err != nil {
		return nil, fmt.Errorf("waiting for %#x: %w", want, err)
	}
	if got[0] != want {
		return got, fmt.Errorf("got % x, want type %#x", got, want)
	}
	return got, nil
}
