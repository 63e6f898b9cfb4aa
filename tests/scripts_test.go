package tests

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// TestReleaseScript builds the release binaries for this machine's Linux (the script does every
// platform; one is enough to check it, and fast) and runs each with -version: the version given
// to the script is stamped in. SHA256SUMS lists each file with its hash.
func TestReleaseScript(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs the Linux binaries it builds")
	}
	out := filepath.Join(t.TempDir(), "dist")
	const version = "v0.0.0-test"
	target := "linux/" + runtime.GOARCH
	if log, status := script(t, nil, "release.sh", "-o", out, "-targets", target, version); status != 0 {
		t.Fatalf("release.sh: exit status %d\n%s", status, log)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{} // file -> hash
	for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		hash, file, _ := strings.Cut(l, "  ")
		listed[file] = hash
	}
	for _, prog := range []string{"mqttserver", "mqttpublisher", "mqttsubscriber"} {
		name := prog + "-linux-" + runtime.GOARCH
		bin := filepath.Join(out, name)
		got, err := exec.Command(bin, "-version").Output()
		if err != nil {
			t.Fatalf("%s -version: %v", name, err)
		}
		if want := prog + " " + version + "\n"; string(got) != want {
			t.Errorf("%s -version printed %q, want %q", name, got, want)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if h := fmt.Sprintf("%x", sha256.Sum256(data)); listed[name] != h {
			t.Errorf("SHA256SUMS lists %s as %q, want %s", name, listed[name], h)
		}
	}
	if len(listed) != 3 {
		t.Errorf("SHA256SUMS lists %d files, want 3:\n%s", len(listed), sums)
	}
}
