package cli

import (
	"bytes"
	"errors"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
		says string
	}{
		{nil, ExitOK, ""},
		{&RefusedError{Code: 4}, ExitBadLogin, "prog: the broker refused the connection: bad user name or password\n"},
		{&RefusedError{Code: 5}, ExitNotAllowed, "prog: the broker refused the connection: not authorised\n"},
		{&RefusedError{Code: 2}, ExitRefused, "prog: the broker refused the connection: client identifier rejected\n"},
		{errors.New("boom"), ExitFailure, "prog: boom\n"},
	} {
		var stderr bytes.Buffer
		if got := ExitCode("prog", c.err, &stderr); got != c.want || stderr.String() != c.says {
			t.Errorf("ExitCode(%v) = %d, %q; want %d, %q", c.err, got, stderr.String(), c.want, c.says)
		}
	}
}
