// Command subscriber prints every message on mytopic; Enter unsubscribes, Enter again exits:
// go run ./examples/subscriber [broker URL, default tcp://127.0.0.1:1883]
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// show prints a message. paho hands messages over one at a time: a handler must not block.
func show(_ mqtt.Client, m mqtt.Message) { fmt.Println("received", m.Topic(), string(m.Payload())) }

func main() {
	broker := "tcp://127.0.0.1:1883"
	if len(os.Args) > 1 {
		broker = os.Args[1]
	}
	var unsubscribed atomic.Bool
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("subscriber-%d", os.Getpid()))
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { fmt.Println("connection lost:", err) })
	// On every connect, so that a reconnect subscribes again; in its own goroutine, so it may wait.
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		if unsubscribed.Load() {
			return
		}
		tok := c.Subscribe("mytopic", 0, show)
		err := mqtt.WaitTokenTimeout(tok, 10*time.Second)
		// paho reports a refused subscription (code 0x80) as a success.
		if code := tok.(*mqtt.SubscribeToken).Result()["mytopic"]; err == nil && code > 2 {
			err = fmt.Errorf("refused by the broker (code %#x)", code)
		}
		if err != nil {
			fmt.Println("subscribe:", err)
			return
		}
		fmt.Println("subscribed to mytopic; press Enter to unsubscribe")
	})
	client := mqtt.NewClient(opts)
	// Every token is waited for with a time limit: token.Wait() alone can block forever.
	if err := mqtt.WaitTokenTimeout(client.Connect(), 10*time.Second); err != nil {
		log.Fatalf("connect to %s: %v", broker, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer client.Disconnect(250)
	go func() { // Enter unsubscribes, Enter again ends the program as Ctrl-C does
		in := bufio.NewScanner(os.Stdin)
		if !in.Scan() {
			return // no input (not a terminal): only Ctrl-C ends the program
		}
		unsubscribed.Store(true)
		if err := mqtt.WaitTokenTimeout(client.Unsubscribe("mytopic"), 10*time.Second); err != nil {
			fmt.Println("unsubscribe:", err)
		} else {
			fmt.Println("unsubscribed from mytopic; press Enter to exit")
		}
		in.Scan() // the second Enter, or the end of the input
		stop()
	}()
	<-ctx.Done()
}
