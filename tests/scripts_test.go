package tests

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// script runs a bash script of scripts/ with the test's environment plus env, and returns its
// output and exit status. The scripts are bash: on Windows they run in Git Bash or WSL, not here.
func script(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the scripts are bash scripts")
	}
	cmd := exec.Command("bash", append([]string{"../scripts/" + name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("%s: %v\n%s", name, err, out)
	return "", 0
}

// emptyAfter fails the test if dir holds anything.
func emptyAfter(t *testing.T, dir, what string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("%s left %s in the temporary directory", what, e.Name())
	}
}

// TestBenchScriptLeavesNothing: scripts/bench.sh removes what it builds (it once exec'd the
// benchmark, which skipped its cleanup), and its help names where the report goes.
func TestBenchScriptLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	out, status := script(t, []string{"TMPDIR=" + tmp}, "bench.sh", "-h")
	if status != 0 {
		t.Fatalf("bench.sh -h: exit status %d\n%s", status, out)
	}
	for _, want := range []string{"bench-out/", "-update-docs", "-dir directory"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench.sh -h does not mention %q:\n%s", want, out)
		}
	}
	emptyAfter(t, tmp, "bench.sh -h")
}

// TestDemoRejectsBadPort: a port that is not a number from 1 to 65535 is named at once, before
// anything is built (it once ended with "is port abc or 8080 taken?" below the broker's error).
func TestDemoRejectsBadPort(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"MQTTDEMO_PORT=abc", "demo: MQTTDEMO_PORT=abc is not a port: give a number from 1 to 65535\n"},
		{"MQTTDEMO_HTTP_PORT=70000", "demo: MQTTDEMO_HTTP_PORT=70000 is not a port: give a number from 1 to 65535\n"},
		{"MQTTDEMO_PORT=0", "demo: MQTTDEMO_PORT=0 is not a port: give a number from 1 to 65535\n"},
	} {
		t.Run(strings.ReplaceAll(c.env, "=", " "), func(t *testing.T) { // no "=" in the temporary directory's name
			tmp := t.TempDir()
			out, status := script(t, []string{c.env, "TMPDIR=" + tmp}, "demo.sh")
			if status != 2 || out != c.want {
				t.Errorf("exit status %d, output:\n%s\nwant status 2 and:\n%s", status, out, c.want)
			}
			emptyAfter(t, tmp, "demo.sh")
		})
	}
}
