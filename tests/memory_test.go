package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// The broker's memory as a whole (issue 21), against Mosquitto in the same scenario. Each test
// has a small size that runs in every test run and the size with MQTT_SOAK=1.

// soak tells whether the sizes are asked for.
func soak() bool { return os.Getenv("MQTT_SOAK") == "1" }

// TestMemoryOfflineQueues: offline persistent sessions, then QoS 1 messages of 4 KB to all of
// them (the issue: 1,000 sessions and 2,000 messages grew the broker by 2 GB, Mosquitto by 27
// MB). The copies share their payload and all offline queues together stay within
// -max-queued-total: the broker grows by under 256 MB, the ceiling its budgets and the garbage
// collector's soft limit (-gc-percent) set, at both sizes (before: 387 MB at the small size).
func TestMemoryOfflineQueues(t *testing.T) {
	sessions, count, limit := 200, 500, int64(256<<20)
	if soak() {
		sessions, count, limit = 1000, 2000, 256<<20
	}
	if raceDetector {
		limit *= 3 // the race detector's memory grows with the heap (-gc-percent); .ci/run runs it without
	}
	server, url := harness.StartServer(t, nil)
	grew := offlineQueues(t, url, server.Cmd.Process.Pid, sessions, count)
	t.Logf("mqttserver grew by %d MB: %d offline sessions, %d messages of 4 KB", grew>>20, sessions, count)
	if grew > limit {
		t.Errorf("mqttserver grew by %d MB, want under %d MB", grew>>20, limit>>20)
	}
	mosquitto, murl := harness.StartMosquitto(t)
	t.Logf("Mosquitto grew by %d MB", offlineQueues(t, murl, mosquitto.Cmd.Process.Pid, sessions, count)>>20)
}

// offlineQueues makes sessions offline sessions on q/#, publishes count QoS 1 messages of 4 KB
// to q/x, checks that a new client is still served, and returns the broker's RSS growth.
func offlineQueues(t *testing.T, url string, pid, sessions, count int) int64 {
	t.Helper()
	addr := hostPort(url)
	parallel(t, sessions, func(i int) error {
		conn, err := joinSession(addr, fmt.Sprintf("queue-%04d", i))
		if err != nil {
			return err
		}
		if _, err := conn.Write(rawmqtt.Subscribe(1, "q/#", 1)); err != nil {
			return err
		}
		if ack, err := rawmqtt.Read(conn); err != nil || ack[0] != 0x90 {
			return fmt.Errorf("SUBACK % x: %v", ack, err)
		}
		return leave(conn)
	})
	return publishedGrowth(t, url, pid, "q", count, 4096)
}

// TestMemoryEmptySessions: persistent sessions with nothing queued and no subscription, left
// by clients that were all connected at once, must cost the broker under 4× what they cost
// Mosquitto (1.7 KB each in 20,000 in the issue): 7 KB (10 KB at the small size). The
// connections cost more while they last (goroutine stacks); the broker must give that memory
// back once they have gone.
func TestMemoryEmptySessions(t *testing.T) {
	// At the small size the garbage the broker makes meanwhile (its heap's 4 MB floor) weighs
	// on each session: 6.6 KB a session at 19,000, 6.8 KB at 4,000; 28 KB before the broker gave
	// freed memory back.
	n, limit := 4000, 10000.0 // bytes a session
	if soak() {
		// 20,000 needs more open files than the hard limit here. 7.5 KB: the same broker measures
		// 6.6–7.0 KB from run to run (8818d92 and later alike), so 7.0 failed CI on noise; the
		// 33 KB before the memory was handed back still fails it.
		n, limit = 19000, 7500
	}
	if raceDetector {
		t.Skip("a -race broker cannot run two goroutines for each of 4,000 connections (the race detector's limit is 8,128): run without -race")
	}
	raiseFileLimit(t, uint64(n)+200)
	server, url := harness.StartServer(t, nil)
	pid := server.Cmd.Process.Pid
	before := vmRSS(t, pid)
	perSession := func() float64 { return float64(vmRSS(t, pid)-before) / float64(n) }
	held := emptySessions(t, hostPort(url), pid, n)
	t.Logf("mqttserver: %.1f KB a connection while %d are held", float64(held-before)/float64(n)/1000, n)
	harness.Eventually(t, func() bool { return perSession() < limit },
		"an empty persistent session to cost under %.1f KB", limit/1000)
	t.Logf("mqttserver: %d empty persistent sessions, %.1f KB each", n, perSession()/1000)
	mosquitto, murl := harness.StartMosquitto(t)
	mpid := mosquitto.Cmd.Process.Pid
	mbefore := vmRSS(t, mpid)
	emptySessions(t, hostPort(murl), mpid, n)
	t.Logf("Mosquitto: %d empty persistent sessions, %.1f KB each", n, float64(vmRSS(t, mpid)-mbefore)/float64(n)/1000)
}

// emptySessions connects n clients with clean session 0, 32 at a time, holds them all, then
// has each disconnect; it returns the broker's (process pid) RSS while they were all connected.
func emptySessions(t *testing.T, addr string, pid, n int) (held int64) {
	t.Helper()
	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	parallel(t, n, func(i int) (err error) {
		conns[i], err = joinSession(addr, fmt.Sprintf("empty-%05d", i))
		return err
	})
	held = vmRSS(t, pid)
	parallel(t, n, func(i int) error { return leave(conns[i]) })
	return held
}

// joinSession connects with clean session 0 as id.
func joinSession(addr, id string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, harness.Timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(harness.Timeout))
	if _, err := conn.Write(rawmqtt.Connect{ID: id}.Encode()); err != nil {
		conn.Close()
		return nil, err
	}
	if ack, err := rawmqtt.Read(conn); err != nil || !bytes.Equal(ack[:2], []byte{0x20, 2}) || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("%s: CONNACK % x: %v", id, ack, err)
	}
	return conn, nil
}

// leave disconnects and waits for the broker to close the connection.
func leave(conn net.Conn) error {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(harness.Timeout))
	if _, err := conn.Write(rawmqtt.Disconnect()); err != nil {
		return err
	}
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF && !strings.Contains(fmt.Sprint(err), "reset") {
		return fmt.Errorf("the broker did not close the connection after DISCONNECT: %v", err)
	}
	return nil
}

// TestMemoryRetainedIdle: a publisher sets retained messages on many topics and leaves; with
// nobody connected the broker must idle (under 3% of a core, the median of three 5 s windows)
// and hold under 3× what Mosquitto holds. mochi copies every retained message once a second (the
// issue: 100,000 topics, 481 MB and 29% of a core for ever; Mosquitto 52 MB and 0%); past
// -max-retained (2,000) a retained message is delivered but not retained.
func TestMemoryRetainedIdle(t *testing.T) {
	topics := 30000
	if soak() {
		topics = 100000
	}
	server, url := harness.StartServer(t, nil)
	grew, cpu := retainedIdle(t, hostPort(url), server.Cmd.Process.Pid, topics)
	t.Logf("mqttserver: %d retained topics published, grew by %d MB, idle at %.1f%% of a core", topics, grew>>20, cpu*100)
	mosquitto, murl := harness.StartMosquitto(t)
	mgrew, mcpu := retainedIdle(t, hostPort(murl), mosquitto.Cmd.Process.Pid, topics)
	t.Logf("Mosquitto: grew by %d MB, idle at %.1f%% of a core", mgrew>>20, mcpu*100)
	if raceDetector {
		t.Log("not checked under the race detector, which slows the broker and takes memory of its own")
	} else {
		if cpu > 0.03 {
			t.Errorf("idle at %.1f%% of a core, want under 3%%", cpu*100)
		}
		if limit := max(3*mgrew, 32<<20); grew > limit {
			t.Errorf("grew by %d MB, want under %d MB (3× Mosquitto)", grew>>20, limit>>20)
		}
	}
	server.WaitFor(t, `DROPPED\s+client=retainer topic=retained/\d+ reason="retained messages full`)
}

// retainedIdle publishes a retained message to each of n topics, leaves, and returns the
// broker's RSS growth and the share of a core it then uses while nobody is connected.
func retainedIdle(t *testing.T, addr string, pid, n int) (grew int64, cpu float64) {
	t.Helper()
	before := vmRSS(t, pid)
	conn, err := joinSession(addr, "retainer")
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(conn)
	for i := range n {
		_, _ = w.Write(rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName: fmt.Sprintf("retained/%06d", i), Payload: []byte("a retained value")}))
	}
	if _, err := w.Write(rawmqtt.Pingreq()); err != nil || w.Flush() != nil {
		t.Fatalf("publish: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	for { // the PINGRESP comes after every PUBLISH has been handled
		pk, err := rawmqtt.Read(conn)
		if err != nil {
			t.Fatal(err)
		}
		if pk[0] == 0xd0 {
			break
		}
	}
	if err := leave(conn); err != nil {
		t.Fatal(err)
	}
	grew = vmRSS(t, pid) - before
	// The median of three windows: one window may catch a one-off (a collection of the burst's
	// garbage, the GC floor settling), which is not what idling costs.
	const window = 5 * time.Second
	var shares [3]float64
	for i := range shares {
		start := cpuTicks(t, pid)
		time.Sleep(window) // a measurement, not a synchronisation: the CPU used over the window
		shares[i] = float64(cpuTicks(t, pid)-start) / 100 / window.Seconds()
	}
	slices.Sort(shares[:])
	return grew, shares[1]
}

// cpuTicks is the user and system CPU time process pid has used, in clock ticks (1/100 s).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name in parentheses: state is 3, utime 14, stime 15.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}
