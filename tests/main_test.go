package tests

import (
	"os"
	"os/exec"
	"testing"

	"mqttdemo/tests/harness"
)

// TestMain removes the programs the harness built once the tests have run.
func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// TestHarnessLeavesNothing runs this test binary again, on a test that builds the programs, with
// an empty temporary directory of its own: once it has ended, that directory must be empty.
func TestHarnessLeavesNothing(t *testing.T) {
	if os.Getenv("MQTTDEMO_HARNESS_CHILD") != "" {
		b := harness.Build(t)
		if _, err := os.Stat(b.Server); err != nil {
			t.Fatal(err)
		}
		return
	}
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHarnessLeavesNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MQTTDEMO_HARNESS_CHILD=1", "TMPDIR="+tmp, "TMP="+tmp, "TEMP="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the test binary: %v\n%s", err, out)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left in the temporary directory: %s", e.Name())
	}
}
