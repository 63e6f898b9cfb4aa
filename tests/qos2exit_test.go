package tests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"mqttdemo/tests/harness"
)

// TestSubscriberCountFinishesQoS2: mqttsubscriber -count N at QoS 2 finishes the exchange of
// the messages it printed (PUBREL, PUBCOMP) before it disconnects, and still exits promptly.
// It used to send DISCONNECT ahead of its PUBCOMP, and our broker logged "DROPPED … in-flight
// message expired" for messages that were delivered. With Mosquitto, which logs no such line,
// the subscriber must not have waited for the bound (its UNFINISHED line).
func TestSubscriberCountFinishesQoS2(t *testing.T) {
	for _, b := range []brokerRun{
		{"mqttserver", func(t *testing.T) (*harness.Proc, string) {
			return harness.StartServer(t, nil, "-log-level", "debug")
		}},
		brokers[1],
	} {
		t.Run(b.name, func(t *testing.T) {
			srv, url := b.start(t)
			for i := range 5 {
				id := fmt.Sprintf("counter-%d", i)
				sub := subscribe(t, url, "-id", id, "-topic", "q2/t", "-qos", "2", "-count", "3")
				publish(t, url, "-topic", "q2/t", "-qos", "2", "-count", "3", "-interval", "0", "-message", "m{n}")
				published := time.Now()
				if code := sub.Exit(t); code != 0 {
					t.Fatalf("%s: exit status %d, want 0", id, code)
				}
				if d := time.Since(published); d > time.Second {
					t.Errorf("%s exited %s after the publisher", id, d)
				}
				if got := len(sub.Out.Lines(re(`RECEIVED\s+\S+ q2/t m\d`))); got != 3 {
					t.Errorf("%s printed %d messages, want 3", id, got)
				}
				if l := sub.Out.Lines(re(`UNFINISHED`)); len(l) > 0 {
					t.Errorf("%s: %s", id, l[0])
				}
				if b.name == "mqttserver" {
					// The session's last line: a DROPPED line for it comes before.
					srv.WaitFor(t, `subscriptions removed with the session\s+client=`+regexp.QuoteMeta(id)+`\b`)
				}
			}
			if l := srv.Out.Lines(re(`DROPPED`)); len(l) > 0 {
				t.Errorf("the broker dropped messages the subscriber received:\n%s", strings.Join(l, "\n"))
			}
		})
	}
}
