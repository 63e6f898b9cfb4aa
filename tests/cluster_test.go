package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mqttdemo/tests/harness"
)

// TestCluster runs the unchanged clients on a two-node RabbitMQ cluster made by
// scripts/cluster.sh (docs/cluster.md): the publisher on node 1, the subscriber on node 2, QoS 1.
// Then node 1 stops under the publisher, whose broker list names both nodes: it moves to node 2,
// and the subscriber receives every message the cluster acknowledged, before and after.
// It needs rabbitmq-server (cluster.sh installs it) and takes a minute: MQTT_CLUSTER=1 runs it.
func TestCluster(t *testing.T) {
	if os.Getenv("MQTT_CLUSTER") != "1" {
		t.Skip("MQTT_CLUSTER=1 runs it on a RabbitMQ cluster made by scripts/cluster.sh")
	}
	b := harness.Build(t)
	urls := clusterUp(t)
	if len(urls) != 2 {
		t.Fatalf("cluster.sh up printed %q, want two broker URLs", urls)
	}
	node1, node2 := urls[0], urls[1]

	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", node2, "-topic", "cluster/test", "-qos", "1")
	sub.WaitFor(t, `CONNECTED\s+to `+node2+` as`)
	sub.WaitFor(t, `SUBSCRIBED\s+cluster/test \(qos 1\)`)
	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", node1+","+node2,
		"-topic", "cluster/test", "-qos", "1", "-interval", "100ms", "-message", "n={n}")
	pub.WaitFor(t, `CONNECTED\s+to `+node1+` as`)
	waitReceived(t, sub, 5)

	cluster(t, "stop", "1")
	pub.WaitFor(t, `CONNECTED\s+to `+node2+` as`)
	// Messages published through node 2 arrive: wait for 5 more than had arrived by now.
	waitReceived(t, sub, len(received(sub))+5)
	pub.Signal(t, syscall.SIGINT)
	if code := pub.Exit(t); code != 0 {
		t.Fatalf("publisher: exit status %d", code)
	}
	if s := pub.WaitFor(t, `SUMMARY`); !strings.Contains(s, "dropped 0,") {
		t.Errorf("publisher dropped messages: %s", s)
	}

	// At least once: every message the cluster acknowledged reaches the subscriber.
	var acked []int
	for _, l := range pub.Out.Lines(regexp.MustCompile(`PUBLISHED\s+#\d+ .*acknowledged`)) {
		n, _ := strconv.Atoi(regexp.MustCompile(`#(\d+)`).FindStringSubmatch(l)[1])
		acked = append(acked, n)
	}
	harness.Eventually(t, func() bool {
		got := received(sub)
		for _, n := range acked {
			if !got[n] {
				return false
			}
		}
		return true
	}, "the subscriber to receive the %d acknowledged messages", len(acked))
	t.Logf("%d messages acknowledged, all received on node 2 across the failover", len(acked))
}

var receivedRE = regexp.MustCompile(`RECEIVED\s+\S+ cluster/test n=(\d+) `)

// received returns the message numbers the subscriber printed.
func received(sub *harness.Proc) map[int]bool {
	got := map[int]bool{}
	for _, l := range sub.Out.Lines(receivedRE) {
		n, _ := strconv.Atoi(receivedRE.FindStringSubmatch(l)[1])
		got[n] = true
	}
	return got
}

func waitReceived(t *testing.T, sub *harness.Proc, n int) {
	t.Helper()
	harness.Eventually(t, func() bool { return len(received(sub)) >= n }, "%d messages on the subscriber", n)
}

// clusterUp starts the cluster with its own folder and ports (CLUSTER_DIR and CLUSTER_PORT when
// set, as CI does to remove it even if the test is killed), removes it when the test ends, and
// returns its MQTT URLs.
func clusterUp(t *testing.T) []string {
	t.Helper()
	if os.Getenv("CLUSTER_DIR") == "" {
		t.Setenv("CLUSTER_DIR", t.TempDir())
	}
	t.Setenv("CLUSTER_NODES", "2")
	if os.Getenv("CLUSTER_PORT") == "" {
		t.Setenv("CLUSTER_PORT", strconv.Itoa(clusterPorts(t)))
	}
	t.Cleanup(func() {
		if out, err := runCluster("down"); err != nil {
			t.Errorf("cluster.sh down: %v\n%s", err, out)
		}
	})
	return strings.Fields(cluster(t, "up"))
}

// cluster runs scripts/cluster.sh with args and returns its standard output.
func cluster(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCluster(args...)
	if err != nil {
		t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runCluster(args ...string) (string, error) {
	// cluster.sh bounds each of its waits; this bounds the whole, an install from apt included.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/cluster.sh", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// clusterPorts returns a first port for cluster.sh (CLUSTER_PORT) such that the 40 ports from it
// are free, like harness.FreePort.
func clusterPorts(t *testing.T) int {
	t.Helper()
next:
	for range 100 {
		base := harness.FreePort(t)
		for p := base; p < base+40; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				continue next
			}
			l.Close()
		}
		return base
	}
	t.Fatal("no 40 free ports in a row")
	return 0
}
