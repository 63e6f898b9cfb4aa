// Package shared is the configuration and console code of the three programs of the suite:
// defaults, MQTT_* environment variables and command-line flags, loaded in that order, and the
// paho client options built once for the publisher and the subscriber.
package shared

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// EnvPrefix starts the name of every environment variable the programs read.
const EnvPrefix = "MQTT_"

// Program describes one command for its usage text.
type Program struct {
	Name    string // e.g. "mqttpublisher"
	Summary string // one line: what the program does
	Example string // one or more example command lines
	Exit    string // the exit statuses, one per line, when they say more than 0 and 1
}

// NewFlagSet returns an empty flag set for p whose usage text names the program, its
// environment variables and an example.
func NewFlagSet(p Program, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		example := "" // a flag of this program with a dash in its name shows the rule best
		fs.VisitAll(func(f *flag.Flag) {
			b, isBool := f.Value.(interface{ IsBoolFlag() bool })
			if example == "" && strings.Contains(f.Name, "-") && !(isBool && b.IsBoolFlag()) {
				example = f.Name
			}
		})
		fmt.Fprintf(out, "%s: %s\n\nUsage: %s [flags]\n\nFlags (each also read from the environment: -%s from %s):\n",
			p.Name, p.Summary, p.Name, example, EnvName(example))
		fs.PrintDefaults()
		if p.Example != "" {
			fmt.Fprintf(out, "\nExample:\n%s\n", p.Example)
		}
		if p.Exit != "" {
			fmt.Fprintf(out, "\nExit status:\n%s\n", p.Exit)
		}
	}
	return fs
}

// EnvName is the environment variable that sets the flag name: -will-topic is MQTT_WILL_TOPIC.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load fills fs from defaults (already in fs), then from MQTT_* variables read with getenv, then
// from args, then runs validate (which may be nil). Any problem is reported on the flag set's
// output as one line and the usage, and returned as a *UsageError; -h returns flag.ErrHelp.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string, validate func() error) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		v := getenv(name)
		if v == "" || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("invalid value %q for %s: %v", v, name, err)
		}
		if l, ok := f.Value.(*StringList); ok {
			l.fromEnv = true // flags given on the command line replace, not extend, the variable
		}
	})
	if envErr != nil {
		return usageFailure(fs, envErr)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Err: err} // the flag package has already printed the line and the usage
	}
	if fs.NArg() > 0 {
		return usageFailure(fs, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0)))
	}
	if validate != nil {
		if err := validate(); err != nil {
			return usageFailure(fs, err)
		}
	}
	return nil
}

func usageFailure(fs *flag.FlagSet, err error) error {
	fmt.Fprintln(fs.Output(), err)
	fs.Usage()
	return &UsageError{Err: err}
}

// UsageError is a bad flag, variable or argument. It has been reported with the usage already;
// the program exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
