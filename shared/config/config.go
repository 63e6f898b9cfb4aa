// Package config reads the settings of the suite's programs: defaults, MQTT_* environment
// variables and command-line flags, loaded in that order, with flag values that check what
// they are given.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// EnvPrefix starts the name of every environment variable the programs read.
const EnvPrefix = "MQTT_"

// Version is the suite's version, which -version prints. scripts/release.sh stamps it:
// go build -ldflags "-X mqttdemo/shared/config.Version=v1.2.0"; a plain build says "dev".
var Version = "dev"

// ErrVersion is what Load returns for -version: the program prints Version and exits 0.
var ErrVersion = errors.New("version requested")

// versionFlag is the flag every program has that prints Version; it has no variable.
const versionFlag = "version"

// Program describes one command for its usage text.
type Program struct {
	Name    string // e.g. "mqttpublisher"
	Summary string // one line: what the program does
	Example string // one or more example command lines
	Exit    string // the exit statuses, one per line, when they say more than 0 and 1
}

// NewFlagSet returns a flag set for p, with only -version, whose usage text names the program,
// its environment variables and an example.
func NewFlagSet(p Program, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool(versionFlag, false, "print the version ("+Version+") and exit")
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
// output as a short usage line followed by one line that names the flag or variable and its
// value, last so that it stays in sight; it is returned as a *UsageError. -h prints the whole
// usage and returns flag.ErrHelp.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string, validate func() error) error {
	fromEnv := map[string]string{} // flag name -> its value as the environment set it
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		v := getenv(name)
		if v == "" || envErr != nil || f.Name == versionFlag {
			return
		}
		var err error
		if l, ok := f.Value.(*StringList); ok {
			err = l.setList(v) // a comma-separated list, also where the flag takes a value whole
		} else {
			err = fs.Set(f.Name, v)
		}
		if err != nil {
			envErr = fmt.Errorf("invalid value %q for %s: %v", v, name, explain(f, err))
		}
		fromEnv[f.Name] = f.Value.String()
		if l, ok := f.Value.(*StringList); ok {
			l.fromEnv = true // flags given on the command line replace, not extend, the variable
		}
	})
	if envErr != nil {
		return usageFailure(fs, envErr)
	}
	// The flag package would print its error, then the whole usage: the error would scroll away.
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return err
	}
	if err != nil {
		return usageFailure(fs, explainParse(fs, err))
	}
	if f := fs.Lookup(versionFlag); f != nil && f.Value.String() == "true" {
		return ErrVersion
	}
	if fs.NArg() > 0 {
		return usageFailure(fs, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0)))
	}
	if validate != nil {
		if err := validate(); err != nil {
			var bad *BadValue
			if errors.As(err, &bad) {
				err = bad.describe(fs, fromEnv)
			}
			return usageFailure(fs, err)
		}
	}
	return nil
}

// BadValue is a value that passed its flag's own check but not the program's: validate
// functions return it, and Load names the flag or the variable the value came from.
type BadValue struct {
	Flag string // without the dash
	Why  string
}

func (e *BadValue) Error() string { return "-" + e.Flag + ": " + e.Why }

// describe names the variable when the value is still the one it gave, else the flag.
func (e *BadValue) describe(fs *flag.FlagSet, fromEnv map[string]string) error {
	f := fs.Lookup(e.Flag)
	if f == nil {
		return e
	}
	where := "flag -" + e.Flag
	if v, ok := fromEnv[e.Flag]; ok && v == f.Value.String() {
		where = EnvName(e.Flag)
	}
	return fmt.Errorf("invalid value %q for %s: %s", f.Value.String(), where, e.Why)
}

// parseErrorRE is the flag package's report of a number or boolean it could not read.
var parseErrorRE = regexp.MustCompile(`^(invalid (?:boolean )?value ".*" for (?:flag )?-([^:\s]+)): (parse error|value out of range)$`)

// explainParse replaces the flag package's "parse error" by what the flag wants.
func explainParse(fs *flag.FlagSet, err error) error {
	m := parseErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return err
	}
	return fmt.Errorf("%s: %v", m[1], explain(f, errors.New(m[3])))
}

// explain turns the flag package's "parse error" and "value out of range", which do not say
// what was expected, into words that do.
func explain(f *flag.Flag, err error) error {
	if msg := err.Error(); msg != "parse error" && msg != "value out of range" {
		return err
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err
	}
	switch g.Get().(type) {
	case bool:
		return errors.New("want true or false")
	case int, int64:
		if err.Error() == "value out of range" {
			return errors.New("the number is too large")
		}
		return errors.New("want a whole number, e.g. 10")
	case uint, uint64:
		return errors.New("want a whole number of 0 or more")
	case float64:
		return errors.New("want a number, e.g. 0.5")
	case time.Duration:
		return errors.New("want a duration such as 500ms, 1s or 2m")
	}
	return err
}

// usageFailure reports err after a short usage line, and returns it as a *UsageError.
func usageFailure(fs *flag.FlagSet, err error) error {
	fmt.Fprintf(fs.Output(), "Usage: %s [flags]  (%s -h lists every flag)\n%s: %v\n", fs.Name(), fs.Name(), fs.Name(), err)
	return &UsageError{Err: err}
}

// UsageError is a bad flag, variable or argument. It has been reported with the usage already;
// the program exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
