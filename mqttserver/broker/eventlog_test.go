package broker

import (
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestPublishFloodIsSummarised: past LinesPerSecond, published messages are counted into
// "more messages published" lines; together the lines account for every message.
func TestPublishFloodIsSummarised(t *testing.T) {
	b, logs := startBroker(t, Config{})
	floodAndCount(t, logs, connect(t, clientOpts(b.Addr(), "flood")), "flood/x", eventlog.MsgPublished, eventlog.MsgPublishedMore)
}

// floodAndCount publishes 3000 QoS 0 messages to topic (well under a second, even on a loaded
// machine), then waits until the lines msg and the counts of the summary lines add up to 3000,
// and checks that a summary came.
func floodAndCount(t *testing.T, logs *logBuffer, c paho.Client, topic, msg, summary string) {
	t.Helper()
	const total = 3000
	for i := range total {
		tok := c.Publish(topic, 0, false, "m")
		if i == total-1 {
			if err := wait(tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() (lines, summed int) {
		for _, r := range logs.records(t) {
			switch r["msg"] {
			case msg:
				lines++
			case summary:
				summed += int(r["count"].(float64))
			}
		}
		return
	}
	waitFor(t, "every message to be logged or counted", func() bool { l, s := count(); return l+s == total })
	if lines, summed := count(); summed == 0 {
		t.Errorf("%d lines and no summary line", lines)
	}
}

// TestNoPasswordInDebugLogs: at debug every packet is logged, and mochi logs a whole packet when
// a client breaks the protocol with a second CONNECT; the password must appear in neither form.
func TestNoPasswordInDebugLogs(t *testing.T) {
	b, logs := startBroker(t, Config{AuthFile: writeAuthFile(t)}) // JSON at debug
	connect(t, clientOpts(b.Addr(), "a").SetUsername("alice").SetPassword(alicePassword))
	_ = wait(paho.NewClient(clientOpts(b.Addr(), "w").SetUsername("alice").SetPassword(wrongPassword)).Connect())

	// A raw client: CONNECT with the password, then a second CONNECT (a protocol violation).
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pk := connectWithPassword("raw", "alice", alicePassword)
	if _, err := conn.Write(pk); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil || ack[3] != 0 {
		t.Fatalf("CONNACK % x, %v", ack, err)
	}
	_, _ = conn.Write(pk)
	waitFor(t, "the raw client to be disconnected", func() bool {
		return logs.has(t, eventlog.MsgDisconnected, map[string]any{"client": "raw"})
	})

	text := logs.String()
	if !strings.Contains(text, `"msg":"packet received"`) {
		t.Fatal("no per-packet debug lines: the test does not test what it should")
	}
	assertNoPasswords(t, text)
	for _, p := range []string{alicePassword, wrongPassword} {
		if strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(p))) {
			t.Errorf("a password appears base64-encoded in the log")
		}
	}
}

// connectWithPassword is an MQTT 3.1.1 CONNECT with a user name and password.
func connectWithPassword(id, user, pass string) []byte {
	return rawmqtt.Connect{ID: id, Clean: true, KeepAlive: 30, User: user, Password: pass}.Encode()
}
