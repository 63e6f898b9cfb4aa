package broker

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/mqttserver/store"
)

// smallDisk mounts a tmpfs of size on a new directory, unmounted when the test ends (after the
// processes it started, whose cleanups run first). It skips where it cannot mount (not root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs to fill it: needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for range 1 << 20 { // a tmpfs of a few MB fills long before
		if _, err := f.Write(chunk); errors.Is(err, syscall.ENOSPC) {
			return path
		} else if err != nil {
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
	t.Fatalf("%s never filled", dir)
	return ""
}

// logged counts the lines with message msg.
func logged(t *testing.T, p *process, msg string) int {
	n := 0
	for _, r := range p.logs.records(t) {
		if r["msg"] == msg {
			n++
		}
	}
	return n
}

// fullDiskBroker starts the binary on a small disk with a persistent subscriber "keeper" of
// queue/# offline and one message acknowledged for it, then fills the disk. The data file has
// free pages left: a message of 256 KiB makes the next commit grow it, and fail.
func fullDiskBroker(t *testing.T) (p *process, mqttAddr, filler string) {
	dir := smallDisk(t, "1m")
	p, started := startBinary(t, "-listen", "127.0.0.1:0", "-data", dir)
	mqttAddr = addr(t, started, "mqtt")
	keeper := connect(t, clientOpts(mqttAddr, "keeper").SetCleanSession(false))
	if err := wait(keeper.Subscribe("queue/#", 1, nil)); err != nil {
		t.Fatal(err)
	}
	keeper.Disconnect(100)
	waitFor(t, "keeper's connection to end", func() bool {
		return p.logs.has(t, eventlog.MsgDisconnected, map[string]any{"client": "keeper"})
	})
	pub := connect(t, clientOpts(mqttAddr, "pub"))
	if err := wait(pub.Publish("queue/before", 1, false, "before")); err != nil {
		t.Fatal(err)
	}
	return p, mqttAddr, fillDisk(t, dir)
}

var bigPayload = "during-" + strings.Repeat("x", 256<<10)

// TestDataFullDisk: while the data file cannot grow, no PUBACK leaves for a message the broker
// could not store, and the failing disk is logged once (not every retry); a client of a session
// that is not stored still connects, subscribes and exchanges QoS 0 meanwhile. Once space is
// freed the broker says so, sends a connected subscriber the copy it held back, acknowledges
// the message sent again, and a SIGKILL right after loses nothing acknowledged.
func TestDataFullDisk(t *testing.T) {
	p1, a, filler := fullDiskBroker(t)
	var live received // a clean session, connected through the outage
	liveSub := connect(t, clientOpts(a, "live").SetDefaultPublishHandler(live.handler))
	if err := wait(liveSub.Subscribe("queue/#", 1, nil)); err != nil {
		t.Fatal(err)
	}

	producer := rawConnect(t, a, "producer", false)
	_ = producer.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := producer.Write(rawmqtt.Publish("queue/during", 1, 1, []byte(bigPayload))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed commit logged", func() bool { return logged(t, p1, store.MsgNotSaved) > 0 })
	if raw, err := rawmqtt.Read(producer); err == nil { // the broker ends the connection instead
		t.Fatalf("while the disk is full the producer got % x, want no PUBACK", raw[:min(len(raw), 4)])
	}
	if !strings.Contains(p1.logs.String(), "no space left on device") {
		t.Error("the failed commit's line does not say that the disk is full")
	}

	// A clean session meanwhile: its CONNACK and SUBACK wait for nothing stored.
	newcomer := rawConnect(t, a, "newcomer", true)
	rawExchange(t, newcomer, rawmqtt.Subscribe(1, "chat/#", 0), 0x90, 1)
	if _, err := newcomer.Write(rawmqtt.Publish("chat/x", 0, 0, []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	if raw, err := rawmqtt.Read(newcomer); err != nil || raw[0]>>4 != packets.Publish {
		t.Fatalf("QoS 0 while the disk is full: % x %v, want the PUBLISH back", raw, err)
	}

	time.Sleep(5 * 200 * time.Millisecond) // the outage lasts some retries (one each 0.2 s): not a wait for the broker
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the recovery line", func() bool { return logged(t, p1, store.MsgSavedAgain) > 0 })
	for _, r := range p1.logs.records(t) {
		if r["msg"] == store.MsgSavedAgain && r["failed_commits"].(float64) < 3 {
			t.Errorf("recovered after %v failed commits, want the outage to span some retries", r["failed_commits"])
		}
	}
	if n := logged(t, p1, store.MsgNotSaved); n != 1 {
		t.Errorf("the failing disk was logged %d times within 10 s, want once", n)
	}
	waitFor(t, "the held copy on the live subscriber's open connection", func() bool {
		return slices.Contains(live.list(), "queue/during "+bigPayload)
	})

	// The producer sends again, as a client does that saw no PUBACK.
	again := rawConnect(t, a, "producer", false)
	resend := rawmqtt.Publish("queue/during", 1, 1, []byte(bigPayload))
	resend[0] |= 0x08 // DUP
	rawExchange(t, again, resend, 0x40, 1)
	p1.kill(t) // the moment the PUBACK is in

	_, started := startBinary(t, "-listen", "127.0.0.1:0", "-data", filepath.Dir(filler))
	var got received
	connect(t, clientOpts(addr(t, started, "mqtt"), "keeper").SetCleanSession(false).SetDefaultPublishHandler(got.handler))
	waitFor(t, "both acknowledged messages", func() bool {
		l := got.list()
		return slices.Contains(l, "queue/before before") && slices.Contains(l, "queue/during "+bigPayload)
	})
	if n := len(got.list()); n > 3 { // QoS 1 allows the resent one twice
		t.Errorf("keeper got %d messages, want 2 (3 with a duplicate of the resent one)", n)
	}
}

// TestDataFullDiskAtStop: stopped while a change could not be saved, the broker says so and
// exits 1, so that a service manager sees it; it does not claim it will retry.
func TestDataFullDiskAtStop(t *testing.T) {
	p, a, _ := fullDiskBroker(t)
	producer := rawConnect(t, a, "producer", false)
	if _, err := producer.Write(rawmqtt.Publish("queue/during", 1, 1, []byte(bigPayload))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed commit logged", func() bool { return logged(t, p, store.MsgNotSaved) > 0 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatal("no exit within the wait after SIGTERM")
	}
	var exit *exec.ExitError
	if err := p.cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit %v, want status 1", err)
	}
	if out := p.logs.String(); !strings.Contains(out, "not saved at stop") {
		t.Errorf("no line says what was not saved at the stop:\n%s", out)
	}
}

// TestDataFullDiskAtStart: a start on a full disk fails with a clear line and leaves no empty
// data file behind, which would stop the next start as damaged.
func TestDataFullDiskAtStart(t *testing.T) {
	dir := smallDisk(t, "256k")
	filler := fillDisk(t, dir)
	out, err := exec.Command(mustBuild(t), "-listen", "127.0.0.1:0", "-data", dir).CombinedOutput()
	if !strings.Contains(string(out), "no space left on device") || err == nil {
		t.Fatalf("start on a full disk: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, store.DataFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed start left %s behind (%v)", store.DataFile, err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	startBinary(t, "-listen", "127.0.0.1:0", "-data", dir)
}
