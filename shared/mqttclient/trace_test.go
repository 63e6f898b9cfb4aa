package mqttclient

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// connectWithPassword is a CONNECT of client "c1", user "alice", password "s3cret", keep-alive
// 30 s, clean session, will "w" (QoS 1).
var connectWithPassword = []byte{
	0x10, 36,
	0, 4, 'M', 'Q', 'T', 'T', 4, // protocol name and level
	0xce,  // user name, password, will QoS 1, will, clean session
	0, 30, // keep-alive
	0, 2, 'c', '1', // client id
	0, 1, 'w', 0, 2, 'b', 'y', // will topic and message
	0, 5, 'a', 'l', 'i', 'c', 'e',
	0, 6, 's', '3', 'c', 'r', 'e', 't',
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		name string
		raw  []byte
		want string // Type and Text
	}{
		{"connect", connectWithPassword, "CONNECT client c1, clean session, keep-alive 30s, user alice, password (not shown), will to w"},
		{"connack", []byte{0x20, 2, 0, 0}, "CONNACK accepted (0)"},
		{"connack refused", []byte{0x20, 2, 0, 5}, "CONNACK refused (5): Not Authorised"},
		{"connack session", []byte{0x20, 2, 1, 0}, "CONNACK accepted (0), session present"},
		{"publish qos 0", []byte{0x30, 6, 0, 1, 't', 'h', 'e', 'y'}, "PUBLISH qos 0, dup 0, retain 0, topic t, 3 bytes"},
		{"publish qos 1 retain", []byte{0x33, 5, 0, 1, 't', 0, 7}, "PUBLISH id 7, qos 1, dup 0, retain 1, topic t, 0 bytes"},
		{"publish qos 2 dup", []byte{0x3c, 9, 0, 3, 'a', '/', 'b', 0x01, 0x02, 'h', 'i'}, "PUBLISH id 258, qos 2, dup 1, retain 0, topic a/b, 2 bytes"},
		{"puback", []byte{0x40, 2, 0, 9}, "PUBACK id 9"},
		{"pubrec", []byte{0x50, 2, 0xff, 0xff}, "PUBREC id 65535"},
		{"pubrel", []byte{0x62, 2, 0, 1}, "PUBREL id 1"},
		{"pubcomp", []byte{0x70, 2, 0, 1}, "PUBCOMP id 1"},
		{"subscribe", []byte{0x82, 12, 0, 3, 0, 1, 'a', 2, 0, 3, 'b', '/', '#', 0}, "SUBSCRIBE id 3, a (qos 2), b/# (qos 0)"},
		{"suback", []byte{0x90, 4, 0, 3, 2, 0x80}, "SUBACK id 3, granted 2 refused"},
		{"unsubscribe", []byte{0xa2, 5, 0, 4, 0, 1, 'a'}, "UNSUBSCRIBE id 4, a"},
		{"unsuback", []byte{0xb0, 2, 0, 4}, "UNSUBACK id 4"},
		{"pingreq", []byte{0xc0, 0}, "PINGREQ"},
		{"pingresp", []byte{0xd0, 0}, "PINGRESP"},
		{"disconnect", []byte{0xe0, 0}, "DISCONNECT"},
		{"short publish", []byte{0x32, 3, 0, 5, 't'}, "malformed PUBLISH: EOF"},
		{"unknown type", []byte{0xf0, 0}, "malformed packet: unsupported packet type 0xf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pk := Decode(c.raw)
			got := strings.TrimSpace(pk.Type + " " + pk.Text())
			if got != c.want {
				t.Errorf("Decode(% x):\n got %q\nwant %q", c.raw, got, c.want)
			}
		})
	}
}

// TestDecodeHidesPassword: neither the line nor the JSON object shows the password.
func TestDecodeHidesPassword(t *testing.T) {
	pk := Decode(connectWithPassword)
	js, err := json.Marshal(pk)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{pk.Text(), string(js)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("the password shows: %s", s)
		}
	}
	if !pk.HasPassword || !strings.Contains(string(js), `"password_set":true`) {
		t.Errorf("the JSON should say a password was sent: %s", js)
	}
}

// TestDecoderChunks: packets are reported whole and in order, however the stream is cut, and
// a stream that stops being MQTT is reported once.
func TestDecoderChunks(t *testing.T) {
	big := append([]byte{0x34, 0x83, 0x01, 0, 1, 't', 0, 5}, bytes.Repeat([]byte{'x'}, 126)...) // 2-byte remaining length
	var stream []byte
	for _, p := range [][]byte{connectWithPassword, {0x20, 2, 0, 0}, big, {0x62, 2, 0, 5}, {0xe0, 0}} {
		stream = append(stream, p...)
	}
	want := []string{"CONNECT", "CONNACK", "PUBLISH id 5, qos 2, dup 0, retain 0, topic t, 126 bytes", "PUBREL id 5", "DISCONNECT"}
	for _, size := range []int{1, 2, 7, 64, len(stream)} {
		var got []string
		d := decoder{dir: Out, report: func(pk Packet) {
			if pk.Direction != Out || pk.At.IsZero() {
				t.Errorf("chunks of %d: packet without direction or time: %+v", size, pk)
			}
			got = append(got, strings.TrimSpace(pk.Type+" "+pk.Text()))
		}}
		for i := 0; i < len(stream); i += size {
			d.feed(stream[i:min(i+size, len(stream))])
		}
		if len(got) != len(want) {
			t.Fatalf("chunks of %d: got %q, want %d packets", size, got, len(want))
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Errorf("chunks of %d: packet %d is %q, want %q", size, i, got[i], want[i])
			}
		}
	}

	var reports []Packet
	d := decoder{dir: In, report: func(pk Packet) { reports = append(reports, pk) }}
	d.feed([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})
	d.feed([]byte{0xd0, 0})
	if len(reports) != 1 || !strings.Contains(reports[0].Error, "remaining length") {
		t.Errorf("a broken stream: got %+v, want one error", reports)
	}
}
