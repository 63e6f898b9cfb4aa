// Command server is the article's MQTT broker: go run ./examples/server [listen address, default :1883]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
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
	return slices.Contains([]byte{mqtt.OnSessionEstablished, mqtt.OnSubscribed,
		mqtt.OnPublished, mqtt.OnUnsubscribed, mqtt.OnDisconnect}, b)
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	server := mqtt.New(nil)
	// mochi refuses every client unless an auth hook lets it in; AllowHook lets anyone in, as the
	// article's broker does (mqttserver -auth checks users and topics).
	_ = server.AddHook(new(auth.AllowHook), nil)
	_ = server.AddHook(new(events), nil)
	_ = server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr}))
	if err := server.Serve(); err != nil { // Serve starts the listener and returns
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-ctx.Done()
	server.Close()
}
