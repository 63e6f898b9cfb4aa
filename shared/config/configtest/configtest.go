// Package configtest holds test helpers for the programs' configuration: every flag is read the
// same way, from the command line and from MQTT_* variables, so one test shape serves all three.
package configtest

import (
	"bytes"
	"io"
	"testing"

	"mqttdemo/shared/config"
)

// LoadFunc is a program's configuration loader (publisher.Load, subscriber.Load, broker.Load).
type LoadFunc[C any] func(args []string, getenv func(string) string, stderr io.Writer) (C, error)

// EveryFlag loads every flag of values (flag name → value) once as arguments and once as MQTT_*
// variables, and hands each result to check. A flag in repeated is given on the command line
// once per value there (-topic a -topic b), as people write a repeatable flag; its entry in
// values is then what the variable holds (a,b).
func EveryFlag[C any](t *testing.T, values map[string]string, repeated map[string][]string, load LoadFunc[C], check func(*testing.T, C)) {
	t.Helper()
	t.Run("flags", func(t *testing.T) {
		var args []string
		for name, v := range values {
			if vs, ok := repeated[name]; ok {
				for _, v := range vs {
					args = append(args, "-"+name, v)
				}
				continue
			}
			args = append(args, "-"+name+"="+v)
		}
		cfg, err := load(args, func(string) string { return "" }, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		check(t, cfg)
	})
	t.Run("environment", func(t *testing.T) {
		env := make(map[string]string, len(values))
		for name, v := range values {
			env[config.EnvName(name)] = v
		}
		cfg, err := load(nil, func(k string) string { return env[k] }, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		check(t, cfg)
	})
}
