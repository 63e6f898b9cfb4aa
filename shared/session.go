package shared

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Announce sets the handlers that tell the console about the connection's life: connected (to
// which broker, as which client), lost, reconnecting. Each time the client connects, onConnect
// (which may be nil) runs after the announcement, on its own goroutine, where it may wait on
// tokens: subscribing there means every reconnect subscribes again. The channel returned is
// closed once the first connection has been announced and onConnect has returned, so that the
// program's own lines come after "CONNECTED" (and "SUBSCRIBED").
func Announce(opts *mqtt.ClientOptions, con *Console, onConnect func(mqtt.Client)) <-chan struct{} {
	var broker atomic.Pointer[url.URL]
	ready := make(chan struct{})
	var once sync.Once
	opts.SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		if b, ok := n.(mqtt.ConnectionNotificationBroker); ok {
			broker.Store(b.Broker)
		}
	})
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		r := c.OptionsReader()
		session := "clean session"
		if !r.CleanSession() {
			session = "persistent session"
		}
		where := "the broker"
		if u := broker.Load(); u != nil {
			where = u.Redacted()
		}
		con.Linef(StyleGood, "CONNECTED", "to %s as %s (%s)", where, r.ClientID(), session)
		if onConnect != nil {
			onConnect(c)
		}
		once.Do(func() { close(ready) })
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		con.Linef(StyleWarn, "LOST", "connection lost (%v); reconnecting", err)
	})
	opts.SetReconnectingHandler(func(_ mqtt.Client, _ *mqtt.ClientOptions) {
		con.Line(StyleDim, "RECONNECTING", "trying the broker again")
	})
	return ready
}

// AwaitReady waits for the channel Announce returned, at most AckTimeout: the announcement is
// for order on the console, never a reason to hang.
func AwaitReady(ctx context.Context, ready <-chan struct{}) {
	timer := time.NewTimer(AckTimeout)
	defer timer.Stop()
	select {
	case <-ready:
	case <-timer.C:
	case <-ctx.Done():
	}
}
