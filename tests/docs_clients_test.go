package tests

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"mqttdemo/tests/harness"
)

// TestClientDocsListEveryFlag keeps docs/clients.md's flag tables in step with the programs:
// every flag -h lists has a row, and every row is a flag.
func TestClientDocsListEveryFlag(t *testing.T) {
	b := harness.Build(t)
	doc, err := os.ReadFile("../docs/clients.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := strings.Split(string(doc), "\n## ")
	table := func(title string) map[string]bool {
		rows := make(map[string]bool)
		for _, s := range sections {
			if strings.HasPrefix(s, title) {
				for _, m := range regexp.MustCompile("(?m)^\\| `-([a-z-]+)").FindAllStringSubmatch(s, -1) {
					rows[m[1]] = true
				}
			}
		}
		return rows
	}
	for _, c := range []struct{ bin, title string }{{b.Publisher, "mqttpublisher flags"}, {b.Subscriber, "mqttsubscriber flags"}} {
		out, _ := exec.Command(c.bin, "-h").CombinedOutput()
		flags := make(map[string]bool)
		for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(string(out), -1) {
			flags[m[1]] = true
		}
		rows := table(c.title)
		if len(flags) == 0 || len(rows) == 0 {
			t.Fatalf("%s: %d flags in -h, %d rows in the doc", c.title, len(flags), len(rows))
		}
		for f := range flags {
			if !rows[f] {
				t.Errorf("%s: -%s is missing from docs/clients.md", c.title, f)
			}
		}
		for r := range rows {
			if !flags[r] {
				t.Errorf("%s: docs/clients.md lists -%s, which -h does not", c.title, r)
			}
		}
	}
}
