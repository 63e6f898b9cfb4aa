package mochifix

import (
	"log/slog"
	"testing"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestCanaryDisconnectToV311 shows on bare mochi a DISCONNECT sent to an MQTT 3.1.1 client when
// the server ends its connection (here as at shutdown); 3.1.1 has the server just close.
func TestCanaryDisconnectToV311(t *testing.T) {
	if !disconnectSentAtClose(t, nil) {
		t.Error("mochi no longer sends DISCONNECT to MQTT 3.1.1 clients: the mend in disconnect.go may go (see doc.go)")
	}
}

// TestNoDisconnectToV311: with the Hook, a 3.1.1 client's connection is just closed.
func TestNoDisconnectToV311(t *testing.T) {
	if disconnectSentAtClose(t, func(s *mqtt.Server) []mqtt.Hook { return []mqtt.Hook{New(s, slog.New(slog.DiscardHandler))} }) {
		t.Error("an MQTT 3.1.1 client got a DISCONNECT")
	}
}

// disconnectSentAtClose connects an MQTT 3.1.1 client, has the server end its connection as it
// does at shutdown, and reports whether
// the client read a DISCONNECT before the connection ended.
func disconnectSentAtClose(t *testing.T, hooks func(*mqtt.Server) []mqtt.Hook) bool {
	t.Helper()
	if hooks == nil {
		hooks = func(*mqtt.Server) []mqtt.Hook { return nil }
	}
	server, addr := bare.ServeWith(t, nil, hooks)
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "v311", Clean: true})
	cl, ok := server.Clients.Get("v311")
	if !ok {
		t.Fatal("the client is not registered")
	}
	_ = server.DisconnectClient(cl, packets.ErrServerShuttingDown) // as Close does for each client
	for range 10 {
		raw, err := rawmqtt.Read(conn)
		if err != nil {
			return false // closed
		}
		if raw[0]>>4 == packets.Disconnect {
			return true
		}
	}
	t.Fatal("the connection stayed open")
	return false
}
