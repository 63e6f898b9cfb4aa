package load

import (
	"strings"
	"testing"
)

func TestLineCounter(t *testing.T) {
	for _, c := range []struct {
		name, out string
		ready     bool
		want      int64
	}{
		{"payloads after ready", "ready\nxx\nxx\nxx\n", true, 3},
		{"nothing before ready counts", "xx\nready\nxx\n", true, 1},
		{"a line longer than the buffer is one", "ready\n" + strings.Repeat("x", 100<<10) + "\nxx\n", true, 2},
		{"no ready", "xx\nxx\n", false, 0},
		{"an unfinished line is not counted", "ready\nxx\nx", true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			lc := &lineCounter{subscribed: make(chan struct{})}
			lc.read(strings.NewReader(c.out))
			ready := false
			select {
			case <-lc.subscribed:
				ready = true
			default:
			}
			if ready != c.ready || lc.n.Load() != c.want {
				t.Errorf("ready %v, %d lines; want %v, %d", ready, lc.n.Load(), c.ready, c.want)
			}
			if c.want > 0 && lc.last.Load() < lc.first.Load() {
				t.Errorf("last line at %d before the first at %d", lc.last.Load(), lc.first.Load())
			}
		})
	}
}

func TestResultMessages(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Result
		want int64
	}{
		{"deliveries", Result{Sent: 10, Expected: 100, Delivered: 90}, 90},
		{"no subscriber: what was published", Result{Sent: 20000}, 20000},
		{"nothing", Result{}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.r.Messages(); got != c.want {
				t.Errorf("Messages() = %d, want %d", got, c.want)
			}
		})
	}
}

func TestWorkloadString(t *testing.T) {
	for _, c := range []struct {
		w    Workload
		want string
	}{
		{Workload{Scn: OneToOne, QoS: 1, Size: 64}, "flood 1→1 QoS1 64B"},
		{Workload{Scn: OneToOne, QoS: 0, Size: 64 << 10, Window: 8}, "flood 1→1 QoS0 64KB"},
		{Workload{Scn: FanIn, QoS: 1, Size: 64, Rate: 10000}, "10k/s 4→1 QoS1 64B"},
		{Workload{Scn: Trickle, QoS: 1, Size: 64, Rate: 500}, "500/s 1→1000 topics QoS1 64B"},
		{Workload{Scn: NoSub, QoS: 2, Size: 64, Count: 1000}, "1000 each 20→0 QoS2 64B"},
		{Workload{Scn: MosquittoTools, QoS: 0, Size: 4096, Count: 5000}, "mosquitto_pub→sub QoS0 4KB"},
	} {
		if got := c.w.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}
