package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// TestSecurityTopicAliasBudgetAfterRefusedPublish: mochi sets an alias in processPublish, after
// its ACL check, so a PUBLISH refused for another reason leaves its table as it was. A client
// sets each alias to a 60,000-byte topic, then "releases" it with a QoS 0 PUBLISH the rules
// refuse (any client's, to "$SYS") on the same alias. The budget charges each alias the longer
// of the topic mochi holds and the one set, so the second alias of 60,000 bytes already passes
// -max-topic-alias-bytes (64 KiB): DISCONNECT 0x97. Before, the budget believed the refused
// PUBLISH had replaced the topic, and ten aliases held 600,000 bytes with the connection open.
func TestSecurityTopicAliasBudgetAfterRefusedPublish(t *testing.T) {
	_, url := harness.StartServer(t, nil)
	c, code := rawConnect(t, hostPort(url), connectOpts{version: 5, id: "alias-bypass"})
	if code != 0 {
		t.Fatalf("CONNACK %#02x", code)
	}
	var stream []byte
	for a := uint16(1); a <= 10; a++ {
		stream = append(stream, aliasPublish(string(rune('a'+a))+"/"+strings.Repeat("x", 60000), a)...)
		stream = append(stream, aliasPublish("$SYS", a)...) // refused by the ACL: mochi keeps the long topic
	}
	stream = append(stream, rawmqtt.Pingreq()...)
	_ = c.SetWriteDeadline(time.Now().Add(harness.Timeout))
	_, _ = c.Write(stream) // the broker may end the connection before it has read everything
	_ = c.SetReadDeadline(time.Now().Add(harness.Timeout))
	raw, err := rawmqtt.Read(c)
	if err != nil {
		t.Fatalf("no DISCONNECT before the connection ended: %v", err)
	}
	pk, err := rawmqtt.Decode(raw, 5)
	if err != nil {
		t.Fatal(err)
	}
	if pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("got %v (reason %#02x) after ten 60,000-byte aliases each 'released' by a refused PUBLISH, "+
			"want DISCONNECT 0x97: the aliases hold 600,000 bytes at -max-topic-alias-bytes 65536", pk.FixedHeader, pk.ReasonCode)
	}
}
