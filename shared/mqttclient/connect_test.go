package mqttclient

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared/console"
)

// TestConnectNamesAnUnknownHost: a broker host name that does not resolve is said once, in those
// words, while Connect keeps trying; when the context ends, the error carries the last failure.
func TestConnectNamesAnUnknownHost(t *testing.T) {
	opts := mqtt.NewClientOptions().AddBroker("tcp://broker.example:1883").SetConnectRetry(false).SetAutoReconnect(false)
	var attempts atomic.Int32
	opts.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		attempts.Add(1)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "broker.example", IsNotFound: true}}
	})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*RetryInterval+RetryInterval/2)
	defer cancel()
	_, err := Connect(ctx, opts, console.New(&out, false))

	var nc *NotConnectedError
	if !errors.As(err, &nc) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(nc.Last.Error(), "no such host") {
		t.Fatalf("error %v, want a *NotConnectedError for the deadline with the lookup failure", err)
	}
	if n := attempts.Load(); n < 2 {
		t.Errorf("%d attempts in %s, want it to keep trying", n, 2*RetryInterval)
	}
	said := strings.Count(out.String(), "the broker's host name broker.example does not resolve (no such host)")
	if said != 1 {
		t.Errorf("said %d times that the name does not resolve, want once; output:\n%s", said, out.String())
	}
}
