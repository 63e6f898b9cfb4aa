package limits

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestMemoryLimitFollowsClients: the soft memory limit is the messages' base plus what the
// connected clients and the kept sessions take, so many connections do not make the garbage
// collector run without end.
func TestMemoryLimitFollowsClients(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	for i := range 20 {
		server.Clients.Add(server.NewClient(nil, "t", fmt.Sprintf("c%d", i), false))
	}
	atomic.StoreInt64(&server.Info.ClientsConnected, 10)
	h := NewReleaseHook(server)
	h.MemoryBase = 100 << 20
	h.check()
	want := int64(100<<20 + 10*memoryPerConnection + 20*memoryPerSession)
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Errorf("memory limit %d, want %d", got, want)
	}
}
