// Command publisher sends time:<now> to mytopic every second, as the article's publisher does:
// go run ./examples/publisher [broker URL, default tcp://127.0.0.1:1883]
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := "tcp://127.0.0.1:1883"
	if len(os.Args) > 1 {
		broker = os.Args[1]
	}
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("publisher-%d", os.Getpid()))
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { fmt.Println("connection lost:", err) })
	opts.SetOnConnectHandler(func(mqtt.Client) { fmt.Println("connected to", broker) })
	client := mqtt.NewClient(opts)
	// Every token is waited for with a time limit: token.Wait() alone can block forever.
	if err := mqtt.WaitTokenTimeout(client.Connect(), 10*time.Second); err != nil {
		log.Fatalf("connect to %s: %v", broker, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer client.Disconnect(250) // sends DISCONNECT, waiting up to 250 ms for it to go out
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		msg := "time:" + time.Now().Format(time.RFC3339)
		// At QoS 0, paho drops a message published while it reconnects, and reports no error.
		if !client.IsConnectionOpen() {
			fmt.Println("not connected, not sent:", msg)
		} else if err := mqtt.WaitTokenTimeout(client.Publish("mytopic", 0, false, msg), 10*time.Second); err != nil {
			fmt.Println("not sent:", msg, err)
		} else {
			fmt.Println("sent", msg)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
