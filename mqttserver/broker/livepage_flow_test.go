package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"mqttdemo/mqttserver/livepage"
	"mqttdemo/mqttserver/rawmqtt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// watchFlow follows the live page's stream watching client and hands each "packets" event's
// packets to the channel, which is closed when the stream ends (at the test's end).
func watchFlow(t *testing.T, base, client string) <-chan livepage.FlowPacket {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events?watch="+client, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events?watch=%s: %s", client, resp.Status)
	}
	ch := make(chan livepage.FlowPacket, 100)
	started := make(chan struct{})
	go func(started chan struct{}) {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		name := ""
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				name = ev
			} else if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && name == "packets" {
				var f livepage.Flow
				if json.Unmarshal([]byte(data), &f) != nil {
					return
				}
				if started != nil {
					close(started)
					started = nil
				}
				for _, p := range f.Packets {
					ch <- p
				}
			}
		}
	}(started)
	select {
	case <-started: // the first event: the stream watches
	case <-time.After(waitTimeout):
		t.Fatal("no packets event")
	}
	return ch
}

// nextFlow reads the captured packets up to and including the first of type typ.
func nextFlow(t *testing.T, ch <-chan livepage.FlowPacket, typ string) []livepage.FlowPacket {
	t.Helper()
	var got []livepage.FlowPacket
	deadline := time.After(waitTimeout)
	for {
		select {
		case p, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended; got %v", got)
			}
			got = append(got, p)
			if p.Type == typ {
				return got
			}
		case <-deadline:
			t.Fatalf("no %s in the flow; got %v", typ, got)
		}
	}
}

func flowText(pks []livepage.FlowPacket) string {
	var s []string
	for _, p := range pks {
		line := p.Dir + " " + p.Type
		if p.ID != 0 {
			line += fmt.Sprint(" id=", p.ID)
		}
		if p.QoS != 0 {
			line += fmt.Sprint(" qos=", p.QoS)
		}
		if p.Dup {
			line += " dup"
		}
		s = append(s, line)
	}
	return strings.Join(s, "\n")
}

// TestLivePageFlowOfARealClient: a page watching a client sees, from a real broker, its packets
// as they went over the wire: the PUBLISH it left unacknowledged, the broker's resend with DUP
// after it came back (with the same id), the QoS 2 exchange of a message it publishes, and the
// will the broker published when the connection broke.
func TestLivePageFlowOfARealClient(t *testing.T) {
	b, _ := startBroker(t, Config{HTTPListen: "127.0.0.1:0"})
	flow := watchFlow(t, "http://"+b.endpointAddr(t, "http"), "flow-sub")

	conn := rawConnect(t, b.Addr(), "flow-sub", false)
	rawExchange(t, conn, rawmqtt.Subscribe(1, "flow/t", 1), 0x90, 1)
	pub := connect(t, clientOpts(b.Addr(), "flow-pub"))
	if err := wait(pub.Publish("flow/t", 1, false, "one")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	first, err := rawmqtt.Read(conn)
	if err != nil || first[0]>>4 != 3 {
		t.Fatalf("PUBLISH: % x, %v", first, err)
	}
	id := binary.BigEndian.Uint16(first[2+2+len("flow/t"):])
	conn.Close() // unacknowledged
	got := nextFlow(t, flow, "CLOSED")

	conn = rawConnectWith(t, b.Addr(), rawmqtt.Connect{ID: "flow-sub", KeepAlive: 60, WillTopic: "flow/will", WillPayload: []byte("gone")})
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	resent, err := rawmqtt.Read(conn)
	if err != nil || resent[0]>>4 != 3 || resent[0]&0x08 == 0 {
		t.Fatalf("the resend with DUP: % x, %v", resent, err)
	}
	if _, err := conn.Write(rawmqtt.Ack(packets.Puback, id)); err != nil {
		t.Fatal(err)
	}
	rawExchange(t, conn, rawmqtt.Publish("flow/q2", 2, 9, []byte("two")), 0x50, 9)
	rawExchange(t, conn, rawmqtt.Ack(packets.Pubrel, 9), 0x70, 9) // PUBREL, PUBCOMP
	conn.Close()                                                  // no DISCONNECT: the will goes out
	got = append(got, nextFlow(t, flow, "CLOSED")...)

	want := fmt.Sprintf(`in CONNECT
out CONNACK
in SUBSCRIBE id=1
out SUBACK id=1
out PUBLISH id=%[1]d qos=1
note CLOSED
in CONNECT
out CONNACK
out PUBLISH id=%[1]d qos=1 dup
in PUBACK id=%[1]d
in PUBLISH id=9 qos=2
out PUBREC id=9
in PUBREL id=9
out PUBCOMP id=9
note WILL
note CLOSED`, id)
	if flowText(got) != want {
		t.Errorf("the page shows:\n%s\nwant:\n%s", flowText(got), want)
	}
	for _, p := range got {
		if p.Type == "WILL" && (p.Topic != "flow/will" || p.Payload != "gone") {
			t.Errorf("the will: %+v", p)
		}
		if p.Type == "PUBLISH" && p.Dir == "out" && p.Payload != "one" {
			t.Errorf("the PUBLISH to the client: %+v", p)
		}
	}
}
