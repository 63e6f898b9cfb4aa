// Package mqttclient is the paho side of the publisher and the subscriber: flags and options
// for the connection, built once for both, connecting with retries, the console lines of the
// connection's life, and a message store that tells when the broker has really acknowledged a
// message, with the fix for paho v1.5.1's QoS 2 resends.
package mqttclient

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared/cli"
	"mqttdemo/shared/config"
	"mqttdemo/shared/console"
)

// Client defaults, shared by the publisher and the subscriber.
const (
	DefaultBroker    = "tcp://127.0.0.1:1883"
	DefaultTopic     = "mytopic"
	DefaultKeepAlive = 30 * time.Second
	// RetryInterval is how long a client waits between attempts to reach a broker that is not up.
	RetryInterval = time.Second
	// MaxInFlight is how many QoS 1/2 messages the publisher sends before it waits for an
	// acknowledgement, and so the most paho resends at once after a reconnect: below
	// Mosquitto's default max_inflight_messages (20), past which it drops the connection.
	MaxInFlight = 16
	// AckTimeout bounds every wait on the broker (connect, publish acknowledgement, subscribe).
	AckTimeout = 10 * time.Second
)

// ClientConfig is the connection part of the publisher's and the subscriber's configuration.
type ClientConfig struct {
	Brokers    *config.StringList
	ID         string
	Username   string
	Password   string
	CAFile     string
	CertFile   string
	KeyFile    string
	Insecure   bool
	KeepAlive  config.Duration
	Clean      bool
	WillTopic  string
	WillText   string
	WillQoS    config.QoS
	WillRetain bool
	Color      *config.Choice
	Debug      bool
	JSON       bool
	program    string
}

// AddClientFlags declares the connection flags on fs and returns the configuration they fill.
func AddClientFlags(fs *flag.FlagSet, program string) *ClientConfig {
	c := &ClientConfig{
		Brokers:   config.NewStringList(config.CheckBrokerURL, DefaultBroker),
		KeepAlive: config.Duration(DefaultKeepAlive),
		Color:     console.NewColorChoice(),
		program:   program,
	}
	fs.Var(c.Brokers, "broker", "broker `URL`: tcp://, ssl://, ws:// or wss://; repeat (or comma-separate) for failover")
	fs.StringVar(&c.ID, "id", "", "client `id` (default "+program+"-<random>); required with -clean=false")
	fs.StringVar(&c.Username, "username", "", "user `name` for the broker")
	fs.StringVar(&c.Password, "password", "", "`password` for the broker (prefer the MQTT_PASSWORD variable: flags show in ps)")
	fs.StringVar(&c.CAFile, "cafile", "", "PEM `file` of the CA that signed the broker's certificate")
	fs.StringVar(&c.CertFile, "cert", "", "PEM client certificate `file`, for brokers that ask for one (with -key)")
	fs.StringVar(&c.KeyFile, "key", "", "PEM private key `file` of -cert")
	fs.BoolVar(&c.Insecure, "insecure", false, "do not verify the broker's certificate (testing only)")
	fs.Var(&c.KeepAlive, "keepalive", "keep-alive `interval`: the broker drops the client after 1.5 of these without a packet")
	fs.BoolVar(&c.Clean, "clean", true, "start a clean session; -clean=false keeps subscriptions and queued messages while away")
	fs.StringVar(&c.WillTopic, "will-topic", "", "last-will `topic`, published by the broker if this client vanishes")
	fs.StringVar(&c.WillText, "will-payload", "", "last-will `message`")
	fs.Var(&c.WillQoS, "will-qos", "last-will `QoS` (0, 1 or 2)")
	fs.BoolVar(&c.WillRetain, "will-retain", false, "retain the last will")
	fs.Var(c.Color, "color", "colour the output: `auto` (when a terminal), always or never")
	fs.BoolVar(&c.Debug, "debug", false, "print every MQTT packet sent and received: type, packet id, QoS, flags, topic, payload size (never the password or the payload)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object per message (and per packet with -debug) on standard output instead of a coloured line; the other lines go to standard error")
	return c
}

// Validate checks what single flags cannot.
func (c *ClientConfig) Validate() error {
	if !c.Clean && c.ID == "" {
		return errors.New("-clean=false needs a fixed -id: the broker keeps the session under that id")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("-cert and -key go together")
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("-password needs -username: MQTT 3.1.1 sends a password only with a user name")
	}
	if (c.CAFile != "" || c.CertFile != "" || c.Insecure) && !slices.ContainsFunc(c.Brokers.Values(), usesTLS) {
		// Ignored, they would let a user believe the connection is encrypted.
		return errors.New("-cafile, -cert, -key and -insecure are for a broker reached over TLS: use -broker ssl://host:8883 or wss://")
	}
	if c.WillTopic != "" {
		if err := config.CheckTopic(c.WillTopic); err != nil {
			return &config.BadValue{Flag: "will-topic", Why: err.Error()}
		}
	} else if c.WillText != "" || c.WillRetain || c.WillQoS != 0 {
		return errors.New("-will-payload, -will-qos and -will-retain need -will-topic")
	}
	if c.KeepAlive != 0 && time.Duration(c.KeepAlive) < time.Second {
		return &config.BadValue{Flag: "keepalive", Why: "MQTT counts keep-alive in whole seconds; use 0 (off) or at least 1s"}
	}
	if c.ID == "" {
		c.ID = c.program + "-" + randomSuffix()
	}
	return nil
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// Options builds the paho options common to both clients. The caller adds its handlers.
func (c *ClientConfig) Options() (*mqtt.ClientOptions, error) {
	o := mqtt.NewClientOptions()
	for _, b := range c.Brokers.Values() {
		o.AddBroker(pahoURL(b))
	}
	o.SetClientID(c.ID)
	o.SetUsername(c.Username)
	o.SetPassword(c.Password)
	o.SetCleanSession(c.Clean)
	o.SetKeepAlive(time.Duration(c.KeepAlive))
	o.SetPingTimeout(AckTimeout)
	o.SetConnectTimeout(AckTimeout)
	o.SetWriteTimeout(AckTimeout)
	// 3.1.1 only: with 0, paho retries a refused CONNECT as 3.1, which doubles every refusal.
	o.SetProtocolVersion(4)
	o.SetAutoReconnect(true)
	// paho resends everything stored at once after a reconnect. The publisher never has more
	// than MaxInFlight messages stored, so that stays under the brokers' limits. (paho's own
	// SetMaxResumePubInFlight would bound it too, but its resume goroutine races with the next
	// reconnect in v1.5.1, and -race builds die of it.)
	o.SetMaxReconnectInterval(5 * time.Second)
	// The first connection is retried by Connect below, so that a refusal ends the program.
	o.SetConnectRetry(false)
	if c.WillTopic != "" {
		o.SetWill(c.WillTopic, c.WillText, byte(c.WillQoS), c.WillRetain)
	}
	tlsConfig, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		o.SetTLSConfig(tlsConfig)
	}
	return o, nil
}

// pahoURL maps the names other tools use to paho's: mqtt:// is tcp://, mqtts:// and tls:// are ssl://.
func pahoURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	switch u.Scheme {
	case "mqtt":
		u.Scheme = "tcp"
	case "mqtts", "tls":
		u.Scheme = "ssl"
	}
	return u.String()
}

// usesTLS tells whether a broker URL is reached over TLS.
func usesTLS(broker string) bool {
	scheme, _, _ := strings.Cut(pahoURL(broker), "://")
	return scheme == "ssl" || scheme == "wss"
}

func (c *ClientConfig) tlsConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" && !c.Insecure {
		return nil, nil // paho uses the system roots for ssl:// and wss://
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.Insecure} //nolint:gosec // -insecure is the user's explicit choice
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read -cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cafile %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load -cert/-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Connect connects a new client made from opts. While no broker answers it tries again every
// RetryInterval, saying so on con now and then, until ctx ends (then the error is a
// *NotConnectedError when an attempt failed); a broker that answers with a refusal ends it
// with a *cli.RefusedError.
//
// A host name that does not resolve is said once, in those words, and tried again like a broker
// that is down: the name may appear later (a container, a VPN, a DNS record on its way), and a
// client started before its broker waits for it. (mosquitto_sub exits instead.)
func Connect(ctx context.Context, opts *mqtt.ClientOptions, con *console.Console) (mqtt.Client, error) {
	var last error // the last attempt's failure
	named := false // the name that does not resolve has been reported
	for attempt := 1; ; attempt++ {
		client := mqtt.NewClient(opts)
		token := client.Connect()
		select {
		case <-token.Done():
		case <-ctx.Done():
			return nil, notConnected(ctx, last)
		}
		err := token.Error()
		if err == nil {
			return client, nil
		}
		last = err
		if ct, ok := token.(*mqtt.ConnectToken); ok && ct.ReturnCode() >= 1 && ct.ReturnCode() <= 5 {
			return nil, &cli.RefusedError{Code: ct.ReturnCode()}
		}
		if err := tlsFailure(err); err != nil {
			return nil, err // trying again cannot help
		}
		var dns *net.DNSError
		switch {
		case errors.As(err, &dns) && dns.IsNotFound && !named:
			named = true
			con.Linef(console.StyleWarn, "WAITING", "the broker's host name %s does not resolve (no such host): is -broker or MQTT_BROKER right? "+
				"Trying again every %s", dns.Name, RetryInterval)
		case (attempt == 1 || attempt%30 == 0) && closedUnanswered(err):
			con.Linef(console.StyleWarn, "WAITING", "the connection was closed before the broker answered (%v): is the scheme right for "+
				"that port (tcp:// plain MQTT, ssl:// TLS, ws:// WebSocket)? Trying every %s", err, RetryInterval)
		case attempt == 1 || attempt%30 == 0:
			con.Linef(console.StyleWarn, "WAITING", "no broker answers yet (%v); trying every %s", err, RetryInterval)
		}
		select {
		case <-time.After(RetryInterval):
		case <-ctx.Done():
			return nil, notConnected(ctx, last)
		}
	}
}

// NotConnectedError ends a Connect whose context ended while no broker answered.
type NotConnectedError struct {
	Err  error // the context's error
	Last error // why the last attempt failed
}

func (e *NotConnectedError) Error() string {
	return fmt.Sprintf("%v (the last attempt: %v)", e.Err, e.Last)
}
func (e *NotConnectedError) Unwrap() error { return e.Err }

func notConnected(ctx context.Context, last error) error {
	if last == nil {
		return ctx.Err()
	}
	return &NotConnectedError{Err: ctx.Err(), Last: last}
}

// closedUnanswered tells whether a connection was accepted and then closed without a CONNACK:
// a broker going down, or (when it lasts) a port that speaks another protocol.
func closedUnanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// tlsFailure returns a clear error when err is a TLS handshake that failed for good: a
// certificate not trusted or not for this host, or a broker that does not speak TLS there.
func tlsFailure(err error) error {
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &host):
		return fmt.Errorf("TLS: %w (connect by a name the certificate lists)", host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("TLS: %w (renew the broker's certificate, or check this machine's clock)", invalid)
	case errors.As(err, &verify):
		return fmt.Errorf("TLS: the broker's certificate is not trusted: %w (give its CA with -cafile; -insecure skips the check, for testing)", verify.Err)
	case errors.As(err, &record):
		return errors.New("TLS: the broker did not answer in TLS: is this a plain tcp:// port?")
	}
	return nil
}

// Wait waits for token, at most AckTimeout or until ctx ends, and returns its error.
func Wait(ctx context.Context, token mqtt.Token, what string) error {
	timer := time.NewTimer(AckTimeout)
	defer timer.Stop()
	select {
	case <-token.Done():
		if err := token.Error(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("%s: no answer from the broker in %s", what, AckTimeout)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// Disconnect sends DISCONNECT, giving in-flight work up to 250 ms to finish.
func Disconnect(client mqtt.Client) {
	if client != nil && client.IsConnected() { // also true while reconnecting: stops that too
		client.Disconnect(250)
	}
}
