// Command server is the article's MQTT broker: go run ./examples/server [listen address, default :1883]
package main

import (
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// events is a mochi hook that prints client events. It runs on the client's goroutine: keep it quick.
type events struct{ mqtt.HookBase }

func (*events) ID() string { return "events" }

func (*events) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnSubscribed || b == mqtt.OnPublished ||
		b == mqtt.OnUnsubscribed || b == mqtt.OnDisconnect
}

func (*events) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	fmt.Println("connected", cl.ID)
}

func (*events) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	for i, f := range pk.Filters { // a code is the QoS granted (0, 1 or 2), or 0x80 and up if refused
		fmt.Printf("subscribed %s %s (code %#x)\n", cl.ID, f.Filter, codes[i])
	}
}

func (*events) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	fmt.Println("published", cl.ID, pk.TopicName, string(pk.Payload))
}

func (*events) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if pk.PacketID == 0 { // no UNSUBSCRIBE: mochi dropping the subscriptions of a clean session that ended
		return
	}
	for _, f := range pk.Filters {
		fmt.Println("unsubscribed", cl.ID, f.Filter)
	}
}

func (*events) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	fmt.Printf("disconnected %s (%v)\n", cl.ID, cl.StopCause())
}

func main() {
	addr := ":1883"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	level := new(slog.LevelVar) // info, until Close below
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: level}))})
	check := func(err error) {
		if err != nil {
			log.Fatal(err) // prints it, exit status 1
		}
	}
	// mochi refuses every client unless an auth hook lets it in; AllowHook lets anyone in, as the
	// article's broker does (mqttserver -auth checks users and topics).
	check(server.AddHook(new(auth.AllowHook), nil))
	check(server.AddHook(new(events), nil))
	// AddListener opens the port: a port in use or a bad address fails here, not in Serve.
	check(server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})))
	check(server.Serve()) // accepts clients in the background, and returns
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	level.Set(slog.LevelError) // Close ends each connection, which mochi logs as a warning with no message
	check(server.Close())
}
