package mochifix

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestCanaryPayloadCopiedPerSession: mochi queues to each offline session a copy of the
// message's payload of its own.
func TestCanaryPayloadCopiedPerSession(t *testing.T) {
	server, addr := bare.Serve(t, nil)
	ids := []string{"offline-1", "offline-2"}
	for _, id := range ids {
		conn := bare.Connect(t, addr, rawmqtt.Connect{ID: id})
		bare.Exchange(t, conn, rawmqtt.Subscribe(1, "c/#", 1), 0x90)
		bare.Write(t, conn, rawmqtt.Disconnect())
	}
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	bare.Exchange(t, pub, rawmqtt.Publish("c/x", 1, 1, bytes.Repeat([]byte("p"), 100)), 0x40)
	var queued [2]packets.Packet
	deadline := time.Now().Add(bare.Wait)
	for i, id := range ids {
		for {
			cl, ok := server.Clients.Get(id)
			if ok && cl.Closed() && cl.State.Inflight.Len() == 1 {
				queued[i] = cl.State.Inflight.GetAll(false)[0]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never held the message offline", id)
			}
			time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	if &queued[0].Payload[0] == &queued[1].Payload[0] {
		t.Fatal("mochi no longer copies a payload for each session: the mend in mochifix/sharedpayloads.go may go (see doc.go)")
	}
}

// TestPayloadsShare: copies of one content end on one payload; other content, small payloads
// and copies gone meanwhile are left alone.
func TestPayloadsShare(t *testing.T) {
	server := bare.New(t, nil)
	p := NewPayloads()
	queue := func(id string, payload []byte) (*mqtt.Client, packets.Packet) {
		cl := server.NewClient(nil, "tcp", id, false)
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
			TopicName: "t", Payload: bytes.Clone(payload)}
		cl.State.Inflight.Set(pk)
		return cl, pk
	}
	held := func(cl *mqtt.Client) []byte {
		pk, ok := cl.State.Inflight.Get(1)
		if !ok {
			return nil
		}
		return pk.Payload
	}
	big := bytes.Repeat([]byte("b"), 4096)
	var first []byte
	for i := range 3 {
		cl, pk := queue(fmt.Sprint("s", i), big)
		p.Share(cl, pk)
		if i == 0 {
			first = held(cl)
			continue
		}
		if got := held(cl); &got[0] != &first[0] || !bytes.Equal(got, big) {
			t.Errorf("copy %d: its own payload, want the first copy's", i)
		}
	}
	other := bytes.Repeat([]byte("o"), 4096)
	if cl, pk := queue("other", other); true {
		p.Share(cl, pk)
		if got := held(cl); &got[0] == &first[0] || !bytes.Equal(got, other) {
			t.Error("a payload of other content was shared")
		}
	}
	small := []byte("small")
	p.Share(queue("small-1", small))
	cl, pk := queue("small-2", small)
	p.Share(cl, pk)
	if got := held(cl); &got[0] != &pk.Payload[0] {
		t.Error("a payload under minShared was shared")
	}
	cl, pk = queue("gone", big)
	cl.State.Inflight.Delete(pk.PacketID)
	p.Share(cl, pk)
	if cl.State.Inflight.Len() != 0 {
		t.Error("a copy dropped before Share came back")
	}
}
