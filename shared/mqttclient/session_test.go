package mqttclient

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared/console"
)

// TestLostBeforeReconnecting starts the reconnecting handler before the connection-lost one,
// as paho's goroutines may: the console still says LOST first.
func TestLostBeforeReconnecting(t *testing.T) {
	var out lockedBuffer
	opts := mqtt.NewClientOptions()
	Announce(opts, console.New(&out, false), nil, nil)
	go opts.OnReconnecting(nil, opts)
	// Give a wrong order the chance to show: wait a moment for a RECONNECTING line.
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) && !strings.Contains(out.String(), "RECONNECTING") {
		time.Sleep(5 * time.Millisecond)
	}
	opts.OnConnectionLost(nil, errors.New("EOF"))
	waitFor(t, func() bool { return strings.Contains(out.String(), "RECONNECTING") }, "RECONNECTING")
	lost, reconnecting := strings.Index(out.String(), "LOST"), strings.Index(out.String(), "RECONNECTING")
	if lost < 0 || lost > reconnecting {
		t.Errorf("want LOST before RECONNECTING:\n%s", out.String())
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
