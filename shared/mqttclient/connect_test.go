package mqttclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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

// TestConnectSaysAPortClosesUnanswered: a port that accepts the connection and closes it without
// a CONNACK (another protocol there: TLS, WebSocket) is not "no broker answers": the line asks
// whether the scheme is right.
func TestConnectSaysAPortClosesUnanswered(t *testing.T) {
	opts := mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:8883").SetConnectRetry(false).SetAutoReconnect(false)
	opts.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			_, _ = server.Read(make([]byte, 64)) // the CONNECT, then no answer
			server.Close()
		}()
		return client, nil
	})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), RetryInterval/2)
	defer cancel()
	if _, err := Connect(ctx, opts, console.New(&out, false)); err == nil {
		t.Fatal("connected to a port that never answered")
	}
	if !strings.Contains(out.String(), "the connection was closed before the broker answered") ||
		!strings.Contains(out.String(), "is the scheme right") {
		t.Errorf("output:\n%s\nwant the line that asks about the scheme", out.String())
	}
}

// TestTLSFailureNamesAnExpiredCertificate: an expired certificate gets its own hint, not the one
// for an unknown CA (which the user may well have given).
func TestTLSFailureNamesAnExpiredCertificate(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, "renew the broker's certificate"},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "give its CA with -cafile"},
		{&tls.CertificateVerificationError{Err: x509.HostnameError{Host: "127.0.0.1", Certificate: &x509.Certificate{}}}, "connect by a name the certificate lists"},
	} {
		if err := tlsFailure(c.err); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tlsFailure(%v) = %v, want it to say %q", c.err, err, c.want)
		}
	}
}
