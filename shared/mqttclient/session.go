package mqttclient

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared/console"
)

// Announce sets the handlers that tell the console about the connection's life: connected (to
// which broker, as which client), lost, reconnecting. Each time the client connects, onConnect
// (which may be nil) runs after the announcement, on its own goroutine, where it may wait on
// tokens: subscribing there means every reconnect subscribes again. The channel returned is
// closed once the first connection has been announced and onConnect has returned, so that the
// program's own lines come after "CONNECTED" (and "SUBSCRIBED").
//
// A persistent session that the broker no longer has when the client comes back (a broker
// restarted without keeping sessions) is said, after CONNECTED: what it queued is gone. store
// (the one KeepReleases watches the connection for) knows the CONNACK's session-present flag.
func Announce(opts *mqtt.ClientOptions, con *console.Console, store *Store, onConnect func(mqtt.Client)) <-chan struct{} {
	var broker atomic.Pointer[url.URL]
	ready := make(chan struct{})
	var once sync.Once
	var connected atomic.Bool // once before: a connection now is a reconnect
	// paho starts the reconnecting and the connection-lost handlers on goroutines of their own,
	// so RECONNECTING could come before LOST: the first waits (a moment at most) for the second.
	var lost atomic.Pointer[event]
	lost.Store(newEvent())
	opts.SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		if b, ok := n.(mqtt.ConnectionNotificationBroker); ok {
			broker.Store(b.Broker)
		}
	})
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		lost.Store(newEvent()) // for the loss of this connection
		r := c.OptionsReader()
		session := "clean session"
		if !r.CleanSession() {
			session = "persistent session"
		}
		where := "the broker"
		if u := broker.Load(); u != nil {
			where = u.Redacted()
		}
		con.Linef(console.StyleGood, "CONNECTED", "to %s as %s (%s)", where, r.ClientID(), session)
		if connected.Swap(true) && !r.CleanSession() && store != nil && !store.sessionPresent.Load() {
			con.Linef(console.StyleWarn, "SESSION-LOST", "the broker kept no session for %s: what it had queued while this "+
				"client was away is gone (a broker restarted without keeping sessions?)", r.ClientID())
		}
		if onConnect != nil {
			onConnect(c)
		}
		once.Do(func() { close(ready) })
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		con.Linef(console.StyleWarn, "LOST", "connection lost (%v); reconnecting", err)
		lost.Load().happen()
	})
	opts.SetReconnectingHandler(func(_ mqtt.Client, _ *mqtt.ClientOptions) {
		lost.Load().wait(lostWait)
		con.Line(console.StyleDim, "RECONNECTING", "trying the broker again")
	})
	return ready
}

// lostWait bounds how long RECONNECTING waits for LOST: the order of the lines is never a
// reason to delay a reconnect for long.
const lostWait = time.Second

// event is something that happens once; waiting for it is bounded.
type event struct {
	done chan struct{}
	once sync.Once
}

func newEvent() *event { return &event{done: make(chan struct{})} }

func (e *event) happen() { e.once.Do(func() { close(e.done) }) }

func (e *event) wait(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-e.done:
	case <-timer.C:
	}
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
