package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// Shell is an interactive bash with job control on a pseudo-terminal: what a reader types the
// commands of a page into. Background jobs (&), Ctrl-Z, bg and fg behave as in a real terminal,
// and everything the terminal shows is collected in Out.
type Shell struct {
	tty     *os.File
	cmd     *exec.Cmd
	Out     *Output
	done    chan struct{}
	prompts int // prompts seen so far
}

// promptRE is what the shell prints before each prompt: the status of the last command between
// two record separators, characters no command types, so the echo of a command never matches.
var promptRE = regexp.MustCompile("\x1e(\\d+)\x1e")

// StartShell runs bash in dir with env (nil: Env()) on a new pseudo-terminal. The shell reads
// no start-up file; readline is off, so the terminal echoes what is typed as it is. Every process
// still in the shell's session is killed when the test ends.
func StartShell(tb testing.TB, dir string, env []string) *Shell {
	tb.Helper()
	if env == nil {
		env = Env()
	}
	s := &Shell{Out: new(Output), done: make(chan struct{})}
	s.cmd = exec.Command("bash", "--norc", "--noprofile", "--noediting", "-i")
	s.cmd.Dir = dir
	s.cmd.Env = append(env, "TERM=dumb", "PS1=$ ", `PROMPT_COMMAND=printf '\036%d\036\n' $?`)
	tty, err := pty.StartWithSize(s.cmd, &pty.Winsize{Rows: 50, Cols: 250})
	if err != nil {
		tb.Skipf("no pseudo-terminal here: %v", err)
	}
	s.tty = tty
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			_, _ = s.Out.Write(buf[:n])
			if err != nil {
				close(s.done)
				return
			}
		}
	}()
	tb.Cleanup(func() {
		for _, pid := range s.session() {
			killPID(pid)
		}
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		tty.Close()
		<-s.done
		if tb.Failed() {
			tb.Logf("--- the terminal:\n%s", s.Screen())
		}
	})
	s.wait(tb, "the first prompt")
	return s
}

// Screen is what the terminal has shown, without carriage returns.
func (s *Shell) Screen() string { return strings.ReplaceAll(s.Out.String(), "\r", "") }

// Type types line and Enter, and returns at once: the output of what it runs comes later.
func (s *Shell) Type(tb testing.TB, line string) {
	tb.Helper()
	if _, err := s.tty.Write([]byte(line + "\n")); err != nil {
		tb.Fatalf("type %q: %v", line, err)
	}
}

// Press types keys as they are (e.g. "\x1a" for Ctrl-Z, "\n" for Enter).
func (s *Shell) Press(tb testing.TB, keys string) {
	tb.Helper()
	if _, err := s.tty.Write([]byte(keys)); err != nil {
		tb.Fatalf("press %q: %v", keys, err)
	}
}

// Run types line and waits for the next prompt; it returns what the terminal showed meanwhile
// and the command's exit status.
func (s *Shell) Run(tb testing.TB, line string) (string, int) {
	tb.Helper()
	from := len(s.Screen())
	s.Type(tb, line)
	status := s.wait(tb, fmt.Sprintf("the prompt after %q", line))
	out := s.Screen()[from:]
	if loc := promptRE.FindAllStringIndex(out, -1); len(loc) > 0 {
		out = out[:loc[len(loc)-1][0]]
	}
	return out, status
}

// WaitPrompt waits for the next prompt (after a job in the foreground ends or stops) and returns
// the status of what ran.
func (s *Shell) WaitPrompt(tb testing.TB) int {
	tb.Helper()
	return s.wait(tb, "a prompt")
}

func (s *Shell) wait(tb testing.TB, what string) int {
	tb.Helper()
	var m [][]string
	Eventually(tb, func() bool {
		m = promptRE.FindAllStringSubmatch(s.Out.String(), -1)
		return len(m) > s.prompts
	}, "%s", what)
	s.prompts++
	status, _ := strconv.Atoi(m[s.prompts-1][1])
	return status
}

// WaitFor waits until a line the terminal showed after offset from matches pattern.
func (s *Shell) WaitFor(tb testing.TB, from int, pattern string) {
	tb.Helper()
	re := regexp.MustCompile(pattern)
	Eventually(tb, func() bool {
		screen := s.Screen()
		return from <= len(screen) && re.MatchString(screen[from:])
	}, "the terminal to show %q", pattern)
}

// Left lists the processes of the shell's session but the shell: what its jobs left running.
// On systems without /proc it lists nothing.
func (s *Shell) Left() []string {
	var left []string
	for _, pid := range s.session() {
		if pid == s.cmd.Process.Pid {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		left = append(left, fmt.Sprintf("%d %s", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
	}
	return left
}

// session returns the processes whose session is the shell's.
func (s *Shell) session() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if sid, zombie, err := sessionOf(pid); err == nil && sid == s.cmd.Process.Pid && !zombie {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sessionOf reads the session id of pid from /proc/PID/stat (its sixth field; the second, the
// command name, is in parentheses and may hold spaces), and whether it has ended but not yet
// been reaped by its parent.
func sessionOf(pid int) (sid int, zombie bool, err error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false, err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0, false, errors.New("no command name")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 4 {
		return 0, false, errors.New("short stat")
	}
	sid, err = strconv.Atoi(fields[3])
	return sid, fields[0] == "Z", err
}
