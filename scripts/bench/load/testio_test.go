package load

import (
	"bufio"
	"io"
	"strings"
)

func newTestWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }
func newTestReader(s string) *bufio.Reader    { return bufio.NewReader(strings.NewReader(s)) }
