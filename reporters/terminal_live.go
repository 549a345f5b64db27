package reporters

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/text/width"

	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/runner/result"
)

// minRedraw spaces the live view's redraws: at most ten a second, however fast agents print.
const minRedraw = 100 * time.Millisecond

// redrawEvery redraws the live view until stop closes, so that elapsed times move and a
// change that came within minRedraw of the last draw is shown.
func (t *Terminal) redrawEvery(every time.Duration, stop <-chan struct{}) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			t.mu.Lock()
			if t.stop != nil && (t.dirty || t.now().Sub(t.lastDraw) >= time.Second) {
				t.draw(false)
			}
			t.mu.Unlock()
		}
	}
}

// draw redraws the per-agent block in place, at most once per minRedraw unless forced.
// Each row is clipped to the terminal's width, so that no row wraps and moving the cursor
// up by the number of rows always finds the block's top.
func (t *Terminal) draw(force bool) {
	now := t.now()
	if !force && now.Sub(t.lastDraw) < minRedraw {
		t.dirty = true
		return
	}
	t.lastDraw, t.dirty = now, false
	var b strings.Builder
	if t.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.drawn)
	}
	names := make([]string, len(t.order))
	nameWidth := 8
	for i, name := range t.order {
		names[i] = termsafe.Line(name)
		nameWidth = max(nameWidth, cells(names[i]))
	}
	cols := max(t.width()-1, 20)
	for i, name := range t.order {
		a := t.agents[name]
		row := fmt.Sprintf("%s%s  %s", names[i], strings.Repeat(" ", nameWidth-cells(names[i])), progressCounts(a))
		if !a.started.IsZero() {
			end := a.finished
			if end.IsZero() {
				end = now
			}
			row += "  " + elapsed(end.Sub(a.started))
		}
		if a.running > 0 && a.latest != "" {
			latest := a.latest
			if a.total > 1 {
				latest = a.latestJob + ": " + latest
			}
			row += "  " + latest
		}
		fmt.Fprintf(&b, "\x1b[2K%s\n", clip(row, cols))
	}
	t.drawn = len(t.order)
	io.WriteString(t.w, b.String())
}

func progressCounts(a *agentProgress) string {
	s := fmt.Sprintf("%d/%d", a.done, a.total)
	if a.running > 0 {
		s += fmt.Sprintf("  running %d", a.running)
	} else if a.done < a.total || a.state != "running" {
		s += "  " + a.state
	}
	keys := make([]string, 0, len(a.outcomes))
	for o := range a.outcomes {
		keys = append(keys, string(o))
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != string(result.Success) {
			s += fmt.Sprintf("  %s %d", k, a.outcomes[result.Outcome(k)])
		}
	}
	return s
}

// elapsed reads like 9s, 1m05s, 2h03m: whole seconds, which is what a person watches.
func elapsed(d time.Duration) string {
	d = d.Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// cells is how many terminal columns s takes: two for wide East Asian characters, none for
// combining marks, one for the rest. Tabs count as one; clip turns them into spaces.
func cells(s string) int {
	n := 0
	for _, r := range s {
		n += runeCells(r)
	}
	return n
}

func runeCells(r rune) int {
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	if r >= 0x300 && r <= 0x36f || r == 0x200b || r == 0x200d {
		return 0 // combining diacritics and zero-width joiners
	}
	return 1
}

// clip shortens s to at most n terminal columns, ending in … when it cut, with tabs as
// spaces (a tab's width depends on where it lands).
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\t", " ")
	if cells(s) <= n {
		return s
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		w := runeCells(r)
		if used+w > n-1 {
			break
		}
		b.WriteRune(r)
		used += w
	}
	return b.String() + "…"
}
