// Package console is the human side of the terminal for the suite's programs: lines with a time
// and a coloured tag, in one palette for all three, the -color choice, and Enter presses read
// from stdin.
package console

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/fatih/color"
	"github.com/mattn/go-isatty"

	"mqttdemo/shared/config"
)

// NewColorChoice is the -color flag value: auto, always or never.
func NewColorChoice() *config.Choice { return config.NewChoice("auto", "auto", "always", "never") }

// UseColor decides whether output to w is coloured: never with NO_COLOR set or TERM=dumb
// (https://no-color.org), always when asked, otherwise only when w is a terminal.
func UseColor(mode string, w io.Writer, getenv func(string) string) bool {
	switch mode {
	case "always":
		if IsTerminal(w) {
			enableEscapes(w.(*os.File)) // on Windows: escapes shown as colour, if the console can
		}
		return true
	case "never":
		return false
	}
	if getenv("NO_COLOR") != "" || getenv("TERM") == "dumb" {
		return false
	}
	return IsTerminal(w) && enableEscapes(w.(*os.File))
}

// IsTerminal reports whether v is an *os.File open on a terminal.
func IsTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Style is the colour of one kind of line.
type Style int

// The palette of the suite: the same kind of event has the same colour in every program.
const (
	StyleInfo Style = iota
	StyleGood
	StyleWarn
	StyleError
	StyleMessage
	StyleSubscribe
	StyleUnsubscribe
	StyleDim
)

var palette = map[Style][]color.Attribute{
	StyleInfo:        {color.FgWhite, color.Bold},
	StyleGood:        {color.FgGreen, color.Bold},
	StyleWarn:        {color.FgYellow, color.Bold},
	StyleError:       {color.FgRed, color.Bold},
	StyleMessage:     {color.FgCyan, color.Bold},
	StyleSubscribe:   {color.FgBlue, color.Bold},
	StyleUnsubscribe: {color.FgMagenta, color.Bold},
	StyleDim:         {color.Faint},
}

// Console writes the human lines of a program: a time, a coloured tag and the text. It is safe
// for concurrent use; each line is written with one Write so lines from goroutines never mix.
type Console struct {
	mu     sync.Mutex
	w      io.Writer
	colors map[Style]*color.Color
	now    func() time.Time
}

// New returns a console on w, coloured when useColor.
func New(w io.Writer, useColor bool) *Console {
	c := &Console{w: w, colors: make(map[Style]*color.Color, len(palette)), now: time.Now}
	for s, attrs := range palette {
		col := color.New(attrs...)
		// Decide per console, not from fatih/color's global look at os.Stdout.
		if useColor {
			col.EnableColor()
		} else {
			col.DisableColor()
		}
		c.colors[s] = col
	}
	return c
}

// Paint returns text in the colour of style.
func (c *Console) Paint(s Style, text string) string { return c.colors[s].Sprint(text) }

// Line writes "15:04:05.000 TAG text" with the tag in the colour of style.
func (c *Console) Line(s Style, tag, text string) {
	line := c.Paint(StyleDim, c.now().Format("15:04:05.000")) + " " + c.Paint(s, fmt.Sprintf("%-12s", tag)) + " " + text + "\n"
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, line) // a console that cannot write has nowhere to report it
}

// Linef is Line with a format.
func (c *Console) Linef(s Style, tag, format string, args ...any) {
	c.Line(s, tag, fmt.Sprintf(format, args...))
}
