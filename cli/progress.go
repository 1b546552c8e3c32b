package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress shows long work: on a terminal one line redrawn in place, in a
// log (pipe or file) a plain line at most every interval.
type progress struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	last     time.Time
	width    int
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), interval: 10 * time.Second}
}

// update shows line now on a terminal, or logs it if the interval passed.
func (p *progress) update(line string) {
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) < 100*time.Millisecond {
			return
		}
		p.last = now
		pad := max(p.width-len(line), 0)
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
		p.width = len(line)
		return
	}
	if now.Sub(p.last) >= p.interval {
		p.last = now
		fmt.Fprintln(p.w, line)
	}
}

// log prints a line that stays (ending any in-place line first).
func (p *progress) log(format string, args ...any) {
	if p.tty && p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// eta formats the remaining time of work done/total after elapsed.
func eta(elapsed time.Duration, done, total float64) string {
	if done <= 0 || total <= done {
		return "-"
	}
	rem := time.Duration(float64(elapsed) * (total - done) / done)
	return rem.Round(time.Second).String()
}
