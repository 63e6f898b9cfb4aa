// Package cli runs a program of the suite as a command: it wires the process's arguments,
// environment, streams and signals to the program, and turns its error into an exit status.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"mqttdemo/shared/config"
)

// Exit statuses shared by the three programs.
const (
	ExitOK         = 0
	ExitFailure    = 1 // anything else that went wrong; the message says what
	ExitUsage      = 2 // a bad flag, variable or argument
	ExitRefused    = 3 // the broker refused the connection (protocol, identifier, unavailable)
	ExitBadLogin   = 4 // the broker refused the user name or password (as mosquitto_sub)
	ExitNotAllowed = 5 // the broker refused: not authorised (as mosquitto_sub)
)

// ClientExit describes the statuses ExitCode gives the clients, for their usage text; failure
// is what status 1 means for the program.
func ClientExit(failure string) string {
	return "  0 done; 1 " + failure + "; 2 bad flag or variable;\n" +
		"  3 the broker refused the connection; 4 bad user name or password; 5 not authorised"
}

// RunFunc is a program's whole behaviour, driven by tests exactly as main drives it.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error

// Main runs a program with the process's arguments, environment and standard streams, stops it
// on SIGINT or SIGTERM, and exits with the status ExitCode gives.
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, config.ErrVersion) {
		fmt.Println(name, config.Version)
	}
	os.Exit(ExitCode(name, err, os.Stderr))
}

// ExitCode reports err on stderr, unless it was reported already, and returns the exit status.
func ExitCode(name string, err error, stderr io.Writer) int {
	var usage *config.UsageError
	var refused *RefusedError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, config.ErrVersion):
		return ExitOK
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &refused):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		switch refused.Code {
		case 4:
			return ExitBadLogin
		case 5:
			return ExitNotAllowed
		}
		return ExitRefused
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
}

// RefusedError is a CONNACK that refused the connection. It lives here, not with the MQTT
// client, so that a program using Main (the broker too) does not link paho.
type RefusedError struct{ Code byte }

// refusals are the MQTT 3.1.1 CONNACK return codes in plain words.
var refusals = map[byte]string{
	1: "unacceptable protocol version",
	2: "client identifier rejected",
	3: "server unavailable",
	4: "bad user name or password",
	5: "not authorised",
}

func (e *RefusedError) Error() string {
	reason, ok := refusals[e.Code]
	if !ok {
		reason = fmt.Sprintf("return code %d", e.Code)
	}
	return "the broker refused the connection: " + reason
}
