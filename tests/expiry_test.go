package tests

import (
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mqttdemo/tests/harness"
)

// TestMessageExpiryLikeMosquitto: the same MQTT 5 scenario, with mosquitto_pub and
// mosquitto_sub -V 5, against mqttserver and Mosquitto, must print the same. Three retained
// QoS 1 messages are published while a persistent session is offline: one without expiry, one
// with 60 s, one with 1 s; once the 1 s has passed, a marker. The session, resumed, gets the
// first two and the marker, and a new subscriber gets them as retained messages; the expired
// one reaches neither. A Message Expiry Interval is forwarded only with the message that had
// one, less the time it waited (mqttserver forwarded mochi's one-day maximum with every
// message, and sent an expired one until mochi's once-a-second sweep took it).
func TestMessageExpiryLikeMosquitto(t *testing.T) {
	pubTool, subTool := harness.Tool(t, "mosquitto_pub"), harness.Tool(t, "mosquitto_sub")
	got := map[string][]string{}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			_, url := b.start(t)
			host, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "tcp://"))
			conn := []string{"-h", host, "-p", port, "-V", "5", "-q", "1"}
			run := func(name, tool string, args ...string) *harness.Proc {
				t.Helper()
				p := harness.Start(t, name, tool, nil, append(slices.Clone(conn), args...)...)
				if code := p.Exit(t); code != 0 {
					t.Fatalf("%s %q: exit status %d\n%s", name, args, code, p.Out.String())
				}
				return p
			}
			session := []string{"-i", "exp-later", "-c", "-x", "300", "-t", "exp/#"}
			run("mosquitto_sub", subTool, append(session, "-E")...) // subscribe, go away
			run("mosquitto_pub", pubTool, "-r", "-t", "exp/plain", "-m", "plain")
			run("mosquitto_pub", pubTool, "-r", "-t", "exp/long", "-m", "long", "-D", "publish", "message-expiry-interval", "60")
			run("mosquitto_pub", pubTool, "-r", "-t", "exp/short", "-m", "short", "-D", "publish", "message-expiry-interval", "1")
			published := time.Now().Unix() // the broker received exp/short no later
			// MQTT's expiry is in whole seconds: exp/short has expired once the clock passes its second.
			harness.Eventually(t, func() bool { return time.Now().Unix() > published+1 }, "exp/short to expire")
			run("mosquitto_pub", pubTool, "-r", "-t", "exp/zz-end", "-m", "end")

			// The resumed session; -R leaves out the retained messages its subscription is sent again.
			format := []string{"-F", "%t %p expiry=%E", "-C", "3", "-W", "20"}
			resumed := run("mosquitto_sub", subTool, append(append(session, "-R"), format...)...)
			fresh := run("mosquitto_sub", subTool, append([]string{"-t", "exp/#"}, format...)...)
			got[b.name] = append(expiryLines(t, "resumed", resumed.Out.String()), expiryLines(t, "new subscriber", fresh.Out.String())...)
		})
	}
	if len(got) == len(brokers) && !slices.Equal(got["mqttserver"], got["mosquitto"]) {
		t.Errorf("mqttserver printed\n%s\nMosquitto\n%s", strings.Join(got["mqttserver"], "\n"), strings.Join(got["mosquitto"], "\n"))
	}
}

var expiryNumber = regexp.MustCompile(`expiry=(\d+)$`)

// expiryLines returns mosquitto_sub's lines, in order for a resumed session (its queue is
// sent in order) and sorted for a new subscriber (retained messages come in no set order),
// with the forwarded expiry of exp/long, which depends on timing, checked and left out.
func expiryLines(t *testing.T, who, out string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if m := expiryNumber.FindStringSubmatch(l); m != nil {
			if n, _ := strconv.Atoi(m[1]); n < 1 || n > 59 {
				t.Errorf("%s: %q: the expiry forwarded after 2 s of 60 is %d s, want 1 to 59", who, l, n)
			}
			l = strings.TrimSuffix(l, m[1]) + "N"
		}
		lines = append(lines, who+": "+l)
	}
	if who != "resumed" {
		slices.Sort(lines)
	}
	return lines
}
