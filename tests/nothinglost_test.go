package tests

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"mqttdemo/tests/harness"
)

// persistentBroker is a broker that keeps its state in a directory, so that it can be killed
// and started again where it left off.
type persistentBroker struct {
	name string
	// start runs the broker on 127.0.0.1:port with its state in dir; called again after a SIGKILL.
	start func(t *testing.T, port int, dir string) *harness.Proc
	// available skips the test when the reference broker is not installed here, and fails it
	// when our broker cannot persist (a missing flag is a regression, not a reason to skip).
	available func(t *testing.T)
	// exactlyOnce: the broker saves its QoS 2 state before it acknowledges, so that no QoS 2
	// message is delivered twice across a crash; a duplicate then fails the test. Otherwise
	// duplicates are counted, not failed: Mosquitto saves after (autosave), so a crash in
	// between rolls it back to before a PUBLISH it had acknowledged, and the publisher's resend
	// then looks new to it. mqttserver with -data promises it.
	exactlyOnce bool
	// lossy, when not empty, is why the broker may lose the message it is acknowledging when
	// SIGKILL comes: up to lossPerKill a kill is then reported and the test skipped, not
	// failed. More, or any loss when lossy is empty, fails the test.
	lossy string
	// lossPerKill is how many acknowledged messages one kill may cost before the test fails.
	lossPerKill int
}

var persistentBrokers = []persistentBroker{
	{
		name: "mosquitto",
		// Mosquitto keeps its state in memory and writes it to mosquitto.db on exit and on
		// autosave. SIGKILL skips the exit, so without autosave it would lose everything since
		// the start. autosave_on_changes with autosave_interval 1 saves after every change:
		// the most it can do, and still not synchronous with the acknowledgement (see
		// docs/clients.md).
		start: func(t *testing.T, port int, dir string) *harness.Proc {
			conf := harness.WriteMosquittoConfig(t, port, "allow_anonymous true",
				"persistence true", "persistence_location "+dir+"/",
				"autosave_interval 1", "autosave_on_changes true", "max_queued_messages 0")
			return harness.RunMosquitto(t, conf, port)
		},
		available:   func(t *testing.T) { harness.Mosquitto(t) },
		exactlyOnce: false,
		// The save comes after the acknowledgement: killed in between, Mosquitto restarts
		// without a QoS 2 message it had answered with PUBREC, and the publisher, rightly,
		// only sends the PUBREL again.
		lossy: "Mosquitto saves (autosave) after it acknowledges; a QoS 2 message it sent PUBREC for can be forgotten",
		// Its save runs at most once a second: messages acknowledged since the last one are
		// gone, a handful at this rate (4 seen). The reference, not our product: reported.
		lossPerKill: 10,
	},
	{
		name: "mqttserver",
		start: func(t *testing.T, port int, dir string) *harness.Proc {
			p, _ := harness.StartServer(t, nil, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-data", dir)
			return p
		},
		available: func(t *testing.T) {
			if !harness.ServerHasFlag(t, "data") {
				t.Fatal("mqttserver -h lists no -data flag: the broker cannot persist, nothing here is tested")
			}
		},
		// With -data it stores the subscribers' copies and its QoS 2 state before it
		// acknowledges (mqttserver/store/store.go): nothing lost, nothing twice.
		exactlyOnce: true,
	},
}

// TestNothingLost streams a few hundred QoS 1 and QoS 2 messages while the broker is killed
// (SIGKILL) and started again with its persisted state. A persistent-session subscriber must
// receive every message: at QoS 1 duplicates are allowed (and counted), at QoS 2 none.
func TestNothingLost(t *testing.T) {
	const total = 300
	for _, kind := range persistentBrokers {
		for _, qos := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", kind.name, qos), func(t *testing.T) {
				kind.available(t)
				b := harness.Build(t)
				port, dir := harness.FreePort(t), t.TempDir()
				url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
				broker := kind.start(t, port, dir)

				topic := fmt.Sprintf("lost/qos%d", qos)
				sub, stdout := harness.StartSplit(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url,
					"-topic", topic, "-qos", strconv.Itoa(qos), "-clean=false", "-id", "lost-sub", "-json")
				sub.WaitFor(t, `SUBSCRIBED`)
				// At QoS 1 the publisher keeps its defaults (clean session): paho keeps what is
				// unacknowledged and resends it after reconnecting. At QoS 2 it needs -clean=false:
				// a message whose PUBREC came before the crash is finished by a PUBREL that only
				// the old session understands.
				pubArgs := []string{"-broker", url, "-topic", topic, "-qos", strconv.Itoa(qos),
					"-count", strconv.Itoa(total), "-interval", "5ms", "-message", "{n}"}
				if qos == 2 {
					pubArgs = append(pubArgs, "-clean=false", "-id", "lost-pub")
				}
				pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, pubArgs...)

				kills := 0
				for round, after := range []int{total / 4, total / 2} {
					harness.Eventually(t, func() bool { return len(decodeJSON(t, stdout.String())) >= after },
						"the subscriber to receive %d messages", after)
					broker.Kill(t)
					kills++
					broker = kind.start(t, port, dir)
					t.Logf("broker killed and restarted after %d messages (round %d)", after, round+1)
				}

				if code := pub.Exit(t); code != 0 {
					t.Fatalf("publisher exit status %d, want 0", code)
				}
				pub.WaitFor(t, fmt.Sprintf(`SUMMARY\s+sent %d, acknowledged %d, dropped 0, unconfirmed 0`, total, total))

				var msgs []jsonMessage
				seen := make(map[int]int)
				count := func() bool {
					msgs = decodeJSON(t, stdout.String())
					clear(seen)
					for _, m := range msgs {
						n, err := strconv.Atoi(m.Payload)
						if err != nil || n < 1 || n > total || m.Topic != topic {
							t.Fatalf("unexpected message %+v", m)
						}
						seen[n]++
					}
					return len(seen) == total
				}
				// Every message is acknowledged: what the broker still has is on its way. A
				// lossy broker gets a quiet spell to show it, instead of failing the wait.
				if kind.lossy == "" {
					harness.Eventually(t, count, "all %d messages at the subscriber", total)
				} else {
					waitQuiet(t, stdout, count)
				}
				dups := len(msgs) - len(seen)
				t.Logf("%s qos %d: %d messages received, %d distinct, %d duplicates", kind.name, qos, len(msgs), len(seen), dups)
				if qos == 2 && dups > 0 && kind.exactlyOnce {
					for n, c := range seen {
						if c > 1 {
							t.Errorf("message %d received %d times at QoS 2", n, c)
						}
					}
				}
				if lost := missing(seen, total); len(lost) > 0 {
					if kind.lossy != "" && len(lost) <= kills*kind.lossPerKill {
						t.Skipf("%s lost %v, a known limit: %s", kind.name, lost, kind.lossy)
					}
					t.Errorf("lost %d acknowledged messages over %d kills: %v", len(lost), kills, lost)
				}
			})
		}
	}
}

func missing(seen map[int]int, total int) []int {
	var out []int
	for n := 1; n <= total; n++ {
		if seen[n] == 0 {
			out = append(out, n)
		}
	}
	return out
}

// waitQuiet waits until done, or until out has not grown for two seconds.
func waitQuiet(t *testing.T, out *harness.Output, done func() bool) {
	t.Helper()
	last, since := -1, time.Now()
	harness.Eventually(t, func() bool {
		if done() {
			return true
		}
		if n := len(out.String()); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > 2*time.Second
	}, "the subscriber's output to settle")
}

// TestQoS2ExactlyOnceAcrossNetworkCuts: when the network fails and the broker survives, QoS 2
// is exactly once end to end. Both clients' connections run through a proxy that cuts them
// three times during a stream of 300 messages; the brokers resend what was in flight (PUBLISH
// marked DUP, or PUBREL), and the subscriber must print each message once.
func TestQoS2ExactlyOnceAcrossNetworkCuts(t *testing.T) {
	const total = 300
	eachBroker(t, func(t *testing.T, url string) {
		b := harness.Build(t)
		proxy := harness.StartProxy(t, strings.TrimPrefix(url, "tcp://"))
		sub, stdout := harness.StartSplit(t, "mqttsubscriber", b.Subscriber, nil, "-broker", proxy.URL,
			"-topic", "once", "-qos", "2", "-clean=false", "-id", "once-sub", "-json")
		sub.WaitFor(t, `SUBSCRIBED`)
		pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", proxy.URL, "-topic", "once", "-qos", "2",
			"-clean=false", "-id", "once-pub", "-count", strconv.Itoa(total), "-interval", "5ms", "-message", "{n}")
		for _, after := range []int{total / 5, total / 2, 4 * total / 5} {
			harness.Eventually(t, func() bool { return len(decodeJSON(t, stdout.String())) >= after },
				"the subscriber to receive %d messages", after)
			proxy.Cut()
		}
		if code := pub.Exit(t); code != 0 {
			t.Fatalf("publisher exit status %d, want 0", code)
		}
		seen := make(map[string]int)
		harness.Eventually(t, func() bool {
			clear(seen)
			for _, m := range decodeJSON(t, stdout.String()) {
				seen[m.Payload]++
			}
			return len(seen) == total
		}, "all %d messages at the subscriber", total)
		for p, n := range seen {
			if n > 1 {
				t.Errorf("message %s printed %d times at QoS 2", p, n)
			}
		}
		if n := len(sub.Out.Lines(re(`LOST`))); n < 3 {
			t.Errorf("the subscriber lost its connection %d times, want 3: the test did not test", n)
		}
		t.Logf("resends dropped by the subscriber: %v", sub.Out.Lines(re(`DUPLICATE`)))
	})
}
