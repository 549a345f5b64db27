package livelog

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// The ring holds exactly the newest bytes written, at their offsets, however the writes fall
// across its wrap.
func TestEntryKeepsTheNewestBytesAtTheirOffsets(t *testing.T) {
	const size = 1000
	e := newEntry(size)
	var all []byte
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		n := rng.IntN(300)
		if i%97 == 0 {
			n = 2500 // one write larger than the ring
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte('a' + rng.IntN(26))
		}
		if k, err := e.Write(p); k != n || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", k, err, n)
		}
		all = append(all, p...)
		from := int64(rng.IntN(len(all) + 1))
		v := e.read(from, 1<<20, nil)
		if v.end != int64(len(all)) {
			t.Fatalf("end = %d, want %d", v.end, len(all))
		}
		wantStart := max(int64(len(all))-size, 0)
		if v.start != wantStart {
			t.Fatalf("start = %d, want %d", v.start, wantStart)
		}
		if got, want := v.data, all[max(from, wantStart):]; !bytes.Equal(got, want) {
			t.Fatalf("write %d: read(%d) = %d bytes, want %d bytes (they differ)", i, from, len(got), len(want))
		}
	}
}

func TestEntryReadIsBoundedAndWakesFollowers(t *testing.T) {
	e := newEntry(64)
	v := e.read(0, 10, nil)
	if len(v.data) != 0 || v.done {
		t.Fatalf("empty log read %q done=%v", v.data, v.done)
	}
	_, _ = e.Write([]byte(strings.Repeat("x", 40)))
	select {
	case <-v.changed:
	default:
		t.Fatal("a write did not wake the follower")
	}
	if got := e.read(0, 10, nil); len(got.data) != 10 {
		t.Fatalf("read with limit 10 gave %d bytes", len(got.data))
	}
	w := e.read(40, 10, nil).changed
	e.finish()
	select {
	case <-w:
	default:
		t.Fatal("the end of the log did not wake the follower")
	}
	if n, _ := e.Write([]byte("late")); n != 4 || e.read(0, 100, nil).end != 40 {
		t.Fatal("a write after the end changed the log")
	}
}

func TestLinesSendsCompleteLinesOnly(t *testing.T) {
	var b bytes.Buffer
	used := lines(&b, []byte("one\ntwo\r\nthr"), 100, false)
	if used != 9 {
		t.Fatalf("used %d bytes, want 9 (the partial line waits)", used)
	}
	want := "id: 104\ndata: one\n\nid: 109\ndata: two\n\n"
	if b.String() != want {
		t.Fatalf("events:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	if used := lines(&b, []byte("thr"), 109, true); used != 3 || b.String() != "id: 112\ndata: thr\n\n" {
		t.Fatalf("final partial line: used %d, %q", used, b.String())
	}
	b.Reset()
	long := strings.Repeat("y", maxLine+5)
	if used := lines(&b, []byte(long), 0, false); used != maxLine {
		t.Fatalf("a line longer than %d bytes: used %d, want it cut at the bound", maxLine, used)
	}
}

func TestCleanKeepsOneEventPerLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"10%\r50%\r100%":          "100%",
		"done\r":                  "done",
		"a\rb\r":                  "b",
		"bad \xff\xfe utf8":       "bad \uFFFD utf8",
		"\x1b]0;title\x07escaped": "\x1b]0;title\x07escaped", // the page shows control bytes as text
	} {
		got := string(clean([]byte(in)))
		if got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsAny(got, "\r\n") {
			t.Errorf("clean(%q) = %q holds a line break", in, got)
		}
	}
}

func TestValidJob(t *testing.T) {
	for job, ok := range map[string]bool{
		"review": true, "review[services/api]#2": true, "": false,
		"a\nb": false, "bad\xff": false, strings.Repeat("j", 600): false,
	} {
		if validJob(job) != ok {
			t.Errorf("validJob(%q) = %v, want %v", job, !ok, ok)
		}
	}
}
