package tests

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mqttdemo/tests/harness"
)

// TestConformanceRandom runs seeded random scenarios: 2 to 4 clients with persistent sessions
// publish, subscribe, withhold and send acknowledgements, disconnect (cleanly or not) and
// reconnect in random order, with packet ids drawn to clash with the ids the broker chose for
// its messages to them. The invariant: every QoS 1 or 2 message the broker accepted (PUBACK or
// PUBREC seen) reaches every session that had a matching subscription when it was published,
// once its client is back and acknowledges: the client must have acknowledged it (a message
// received but not acknowledged is the broker's to send again).
//
//	CONFORMANCE_RANDOM_COUNT  scenarios per variant and broker (default 100)
//	CONFORMANCE_SEED          run only this seed (printed by a failure)
//	CONFORMANCE_STRICT        fail, not skip, a variant that waits for an open issue (none today)
//
// Each run draws new seeds: CI tries new scenarios every time.
func TestConformanceRandom(t *testing.T) {
	harness.Mosquitto(t)
	count := 100
	if v := os.Getenv("CONFORMANCE_RANDOM_COUNT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CONFORMANCE_RANDOM_COUNT=%q: want a positive number", v)
		}
		count = n
	}
	seeds := make([]uint64, count)
	base := rand.Uint64() >> 16 // short enough to copy
	for i := range seeds {
		seeds[i] = base + uint64(i)
	}
	if v := os.Getenv("CONFORMANCE_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CONFORMANCE_SEED=%q: want a number", v)
		}
		seeds = []uint64{seed}
	}
	strict := os.Getenv("CONFORMANCE_STRICT") != ""
	brokers := []*confBroker{startConfOurs(t, false), startConfMosquitto(t, false)}
	for _, v := range []struct {
		name      string
		clashQoS2 bool
		waitsFor  string // on mqttserver
	}{
		{"qos 1 and subscribe clash", false, ""},
		{"qos 2 clashes too", true, ""},
	} {
		t.Run(v.name, func(t *testing.T) {
			for _, b := range brokers {
				t.Run(b.name, func(t *testing.T) {
					start, failed, owed := time.Now(), 0, randomOwed
					for i, seed := range seeds {
						steps := randomScenario(seed, v.clashQoS2)
						if problems := runRandom(t, b, fmt.Sprintf("r%d-%s-%d", map[bool]int{false: 1, true: 2}[v.clashQoS2], b.name[:2], i), steps); len(problems) > 0 {
							failed++
							msg := fmt.Sprintf("seed %d (replay: CONFORMANCE_SEED=%d go test -count=1 -run 'TestConformanceRandom/%s' mqttdemo/tests):\n\t%s\nsteps:\n%s",
								seed, seed, strings.ReplaceAll(v.name, " ", "_"), strings.Join(problems, "\n\t"), describeSteps(steps))
							if v.waitsFor != "" && b.name == "mqttserver" && !strict {
								t.Skipf("waits for %s (CONFORMANCE_STRICT=1 fails it); %s", v.waitsFor, msg)
							}
							t.Error(msg)
							if failed >= 3 {
								t.Fatalf("stopping after %d failed seeds", failed)
							}
						}
					}
					t.Logf("%d scenarios in %s, %d deliveries checked", len(seeds), time.Since(start).Round(time.Millisecond), randomOwed-owed)
					if randomOwed == owed {
						t.Error("no delivery checked: the scenarios test nothing")
					}
				})
			}
		})
	}
}

// randomOwed counts the messages the random scenarios checked, to show they check something.
var randomOwed int

// randomScenario draws a scenario from seed: steps only, so that a seed replays the same
// actions against any broker.
func randomScenario(seed uint64, clashQoS2 bool) []confStep {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := 2 + rng.IntN(3)
	type state struct {
		name      string
		version   byte
		connected bool
	}
	clients := make([]*state, n)
	var steps []confStep
	for i := range clients {
		clients[i] = &state{name: fmt.Sprintf("c%d", i), version: byte(4 + rng.IntN(2)), connected: true}
		steps = append(steps, connect(clients[i].name, clients[i].version, false))
	}
	filters := []string{"r/a", "r/b", "r/+", "r/#", "r/c/+"}
	topics := []string{"r/a", "r/b", "r/c/d"}
	// ids the client chooses itself: the broker's first ids, and the top of the range
	ownIDs := []uint16{1, 2, 3, 4, 5, 65535}
	clash := func(s confStep) confStep {
		if rng.IntN(3) > 0 {
			s.recent = 1 + rng.IntN(3) // one of the broker's latest ids, in flight if withheld
		}
		s.id = ownIDs[rng.IntN(len(ownIDs))]
		return s
	}
	payload := 0
	for range 15 + rng.IntN(25) {
		c := clients[rng.IntN(n)]
		switch op := rng.IntN(100); {
		case !c.connected:
			if op < 60 {
				o := confConnect{version: c.version, withhold: rng.IntN(3) == 0}
				if c.version == 5 {
					o.expiry = 3600
				}
				steps = append(steps, connectWith(c.name, o))
				c.connected = true
			}
		case op < 45:
			payload++
			qos := byte(1 + rng.IntN(2))
			if rng.IntN(8) == 0 {
				qos = 0
			}
			s := pub(c.name, topics[rng.IntN(len(topics))], qos, 0, fmt.Sprint("m", payload))
			if qos == 2 && !clashQoS2 {
				s.id = uint16(30000 + rng.IntN(10000)) // far from the ids the broker chooses
			} else {
				s = clash(s)
			}
			steps = append(steps, s)
		case op < 60:
			steps = append(steps, clash(sub(c.name, 0, filters[rng.IntN(len(filters))], byte(1+rng.IntN(2)))))
		case op < 68:
			steps = append(steps, withhold(c.name))
		case op < 78:
			steps = append(steps, ackAll(c.name))
		case op < 89:
			steps = append(steps, disconnect(c.name))
			c.connected = false
		default:
			steps = append(steps, drop(c.name))
			c.connected = false
		}
	}
	// the end: everyone back, acknowledging
	for _, c := range clients {
		if c.connected {
			steps = append(steps, ackAll(c.name))
		} else {
			steps = append(steps, connect(c.name, c.version, false))
		}
	}
	return steps
}

// runRandom runs steps against b and returns what breaks the invariant.
func runRandom(t *testing.T, b *confBroker, tag string, steps []confStep) []string {
	r := newConfRun(t, b, tag)
	subs := make(map[string]map[string]bool) // client: filters of its session
	owed := make(map[string]map[string]bool) // client: payloads it must get
	var problems []string
	for i, s := range steps {
		err := r.step(s)
		c := r.clients[s.client]
		switch s.op {
		case opSubscribe:
			var last string
			c.mu.Lock()
			if len(c.events) > 0 {
				last = c.events[len(c.events)-1]
			}
			c.mu.Unlock()
			if err != nil || last != fmt.Sprintf("SUBACK %02x", s.subOpts.Qos) {
				problems = append(problems, fmt.Sprintf("step %d: SUBSCRIBE %s not granted: %s %v", i+1, s.filter, last, err))
				continue
			}
			if subs[s.client] == nil {
				subs[s.client] = make(map[string]bool)
			}
			subs[s.client][s.filter] = true
		case opPublish:
			if err != nil {
				problems = append(problems, fmt.Sprintf("step %d: PUBLISH %s not accepted: %v", i+1, s.payload, err))
				continue
			}
			if s.qos == 0 {
				continue
			}
			for name, filters := range subs {
				for f := range filters {
					if topicMatches(f, s.topic) {
						if owed[name] == nil {
							owed[name] = make(map[string]bool)
						}
						owed[name][s.payload] = true
					}
				}
			}
		default:
			if err != nil {
				problems = append(problems, fmt.Sprintf("step %d: %v", i+1, err))
			}
		}
	}
	if err := r.settle(); err != nil {
		problems = append(problems, err.Error())
	}
	for _, name := range sortedKeys(owed) {
		c := r.clients[name]
		c.mu.Lock()
		got := maps.Clone(c.acked) // received and acknowledged: a message seen but not acknowledged may be lost to the client
		c.mu.Unlock()
		var lost []string
		for p := range owed[name] {
			if !got[p] {
				lost = append(lost, p)
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			problems = append(problems, fmt.Sprintf("%s lost %v", name, lost))
		}
	}
	for _, name := range sortedKeys(r.clients) {
		c := r.clients[name]
		c.mu.Lock()
		for _, e := range c.events {
			if strings.HasPrefix(e, "connection closed") || strings.HasPrefix(e, "DISCONNECT") || strings.Contains(e, "sentinel") {
				problems = append(problems, fmt.Sprintf("%s: %s", name, e))
			}
		}
		c.mu.Unlock()
	}
	r.run(nil) // closes the connections
	for _, o := range owed {
		randomOwed += len(o)
	}
	return problems
}

// topicMatches reports whether an MQTT topic filter matches a topic name.
func topicMatches(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		switch {
		case level == "#":
			return true
		case i >= len(tp):
			return false
		case level != "+" && level != tp[i]:
			return false
		}
	}
	return len(f) == len(tp)
}

// describeSteps is a scenario's steps, one a line, for a failure message.
func describeSteps(steps []confStep) string {
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "\t%2d %s", i+1, s.client)
		switch s.op {
		case opConnect:
			fmt.Fprintf(&b, " connect v%d withhold=%v", s.conn.version, s.conn.withhold)
		case opSubscribe:
			fmt.Fprintf(&b, " subscribe %s q%d id %d", s.filter, s.subOpts.Qos, s.id)
		case opPublish:
			fmt.Fprintf(&b, " publish %s q%d %s id %d", s.topic, s.qos, s.payload, s.id)
		case opWithhold:
			b.WriteString(" withhold")
		case opAck:
			b.WriteString(" ack")
		case opDisconnect:
			b.WriteString(" disconnect")
		case opDrop:
			b.WriteString(" drop")
		}
		if s.recent != 0 {
			fmt.Fprintf(&b, " (or the broker's %d-th newest id)", s.recent)
		}
		b.WriteString("\n")
	}
	return b.String()
}
