package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest routine file the loader reads; a bigger one is surely a mistake.
const MaxFileSize = 1 << 20

// Load reads every `*.yaml` and `*.yml` file of dir (an `.agents` directory), in file-name
// order. On invalid files the error is an Errors holding every problem of every file, sorted;
// on I/O failure it is a wrapped error.
func Load(dir string) (*Config, error) {
	return load(os.DirFS(dir), ".", dir, filepath.Join)
}

// LoadFS is Load on a file system, such as a git commit's tree held in memory. Positions name
// files as path.Join(dir, file).
func LoadFS(fsys fs.FS, dir string) (*Config, error) {
	return load(fsys, dir, dir, path.Join)
}

func load(fsys fs.FS, dir, display string, join func(...string) string) (*Config, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read routines directory %s: %w", display, err)
	}
	cfg := &Config{Dir: display, Routines: []*Routine{}}
	var errs Errors
	byName := map[string]*Routine{}
	// One buffer serves every file: Parse keeps no reference to the bytes (yaml.v3 copies
	// every value out of them). It starts large enough for a typical routine and grows for
	// a bigger file, so no file needs a Stat to size it.
	buf := make([]byte, 0, 16<<10)
	d := newDecoder()
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		file := join(display, e.Name())
		data, err := readFile(fsys, path.Join(dir, e.Name()), buf[:0])
		if err != nil {
			if errors.Is(err, errTooLarge) {
				errs = append(errs, Errorf(Pos{File: file}, "file is larger than %d bytes; a routine file is much smaller, is this the right file?", MaxFileSize))
				continue
			}
			return nil, fmt.Errorf("read routine file %s: %w", file, err)
		}
		r, ferrs := d.parse(file, data)
		buf = data
		errs = append(errs, ferrs...)
		if r == nil {
			continue
		}
		if prev, dup := byName[r.Name]; dup {
			errs = append(errs, Errorf(r.Pos, "routine name %q is already used by %s; routine names must be unique (a routine is named after its file unless it sets `name:`)", r.Name, prev.Pos.File))
			continue
		}
		byName[r.Name] = r
		cfg.Routines = append(cfg.Routines, r)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return cfg, nil
}

var errTooLarge = errors.New("file too large")

// readFile reads the file name into buf (from its start), growing it when needed.
func readFile(fsys fs.FS, name string, buf []byte) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readAllLimited(f, buf[:0])
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, errTooLarge
	}
	return data, nil
}

// readAllLimited appends f's contents to buf, reading at most MaxFileSize+1 bytes.
func readAllLimited(f io.Reader, buf []byte) ([]byte, error) {
	r := io.LimitReader(f, MaxFileSize+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func sortErrors(errs Errors) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Pos, errs[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// Parse decodes and validates one routine file and merges the defaults. file names it in
// positions and gives the routine its default name. The routine is nil when errs is not empty.
func Parse(file string, data []byte) (*Routine, Errors) {
	return newDecoder().parse(file, data)
}

// parse is Parse with d, which Load reuses from file to file.
func (d *decoder) parse(file string, data []byte) (r *Routine, errs Errors) {
	defer func() {
		// The loader must never crash the daemon on a pushed file; a panic here is our bug,
		// reported as a problem of the file rather than taking the process down.
		if p := recover(); p != nil {
			r, errs = nil, Errors{Errorf(Pos{File: file}, "internal error while reading this file (please report it): %v", p)}
		}
	}()
	d.reset(file)
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, Errors{err}
	}
	r = &Routine{Pos: Pos{File: file, Line: 1, Col: 1}, Name: routineNameFromFile(file)}
	doc := d.resolve(root)
	switch {
	case isNull(doc) || doc.Kind == 0 || doc.Kind == yaml.MappingNode && len(doc.Content) == 0:
		return nil, Errors{Errorf(Pos{File: file}, "file is empty; a routine needs at least `on:` and `agents:`")}
	case doc.Kind != yaml.MappingNode:
		return nil, Errors{Errorf(d.pos(doc), "a routine file must be a mapping of keys (on:, agents:, ...), got %s", describe(doc))}
	}
	routineObj.decode(d, nil, doc, r, label{what: "routine"}, routineKeyHint)
	if k, ok := d.key(r, "name"); ok {
		r.Pos = d.pos(k.v) // a routine named in the file is where its name is written
	}
	if d.workflow != nil {
		d.workflowRules(r)
	} else if _, ok := d.key(r, "on"); !ok {
		d.errorAt(Pos{File: file, Line: 1, Col: 1}, "routine has no `on:`; add the events that start it, like on: {pull_request: {}} or on: {schedule: [{cron: \"0 3 * * *\"}]}")
	}
	if len(d.errs) == 0 {
		d.validate(r)
	} else {
		// Cross-key checks on a half-decoded routine mostly repeat the first problems;
		// still run the ones that stand on their own so one pass shows them all.
		d.validateLoose(r)
	}
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		if len(d.errs) > maxErrors {
			d.errs = append(d.errs[:maxErrors], Errorf(Pos{File: file}, "too many problems; fix the ones above first"))
		}
		return nil, d.errs
	}
	return r, nil
}

// maxErrors caps the problems listed for one file; past that they mostly repeat one mistake.
const maxErrors = 50

// validateLoose runs validate but keeps only the errors that do not follow from a decoding
// error at the same key.
func (d *decoder) validateLoose(r *Routine) {
	before := len(d.errs)
	d.validate(r)
	bad := map[Pos]bool{}
	for _, e := range d.errs[:before] {
		bad[Pos{File: e.Pos.File, Line: e.Pos.Line}] = true
	}
	kept := d.errs[:before]
	for _, e := range d.errs[before:] {
		if !bad[Pos{File: e.Pos.File, Line: e.Pos.Line}] {
			kept = append(kept, e)
		}
	}
	d.errs = kept
}

func routineNameFromFile(file string) string {
	base := path.Base(filepath.ToSlash(file))
	return strings.TrimSuffix(base, path.Ext(base))
}

// parseYAML reads the single YAML document of a file, turning yaml.v3's messages into
// positioned ones a newcomer can act on.
func parseYAML(file string, data []byte) (*yaml.Node, *Error) {
	if !mayHoldSecondDocument(data) {
		// yaml.Unmarshal reads the bytes in place; the Decoder below copies them through a
		// reader, which is a sizeable share of loading a directory of routines.
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, yamlError(file, data, err)
		}
		return &root, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &root, nil
		}
		return nil, yamlError(file, data, err)
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		return nil, Errorf(Pos{File: file, Line: max(second.Line-1, 1), Col: 1}, "a file holds one routine, but this one has a second YAML document after `---`; move it to its own file")
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(file, data, err)
	}
	return &root, nil
}

// mayHoldSecondDocument reports whether data has a document marker (`---` or `...`) at the
// start of a line other than the first, which a second YAML document needs. yaml.Unmarshal
// would silently drop that document, so such files take the Decoder's path.
func mayHoldSecondDocument(data []byte) bool {
	return bytes.Contains(data, []byte("\n---")) || bytes.Contains(data, []byte("\n..."))
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a yaml.v3 syntax error into file:line:col with advice.
func yamlError(file string, data []byte, err error) *Error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	lines := strings.Split(string(data), "\n")
	// A tab in indentation is the most common cause of several different yaml.v3 messages;
	// find the tab itself and point at it.
	if tl, tc := tabIndent(lines, line); tl > 0 {
		return Errorf(Pos{File: file, Line: tl, Col: tc}, "tabs are not allowed for indentation; use spaces")
	}
	if strings.Contains(msg, "did not find expected key") || strings.Contains(msg, "did not find expected '-' indicator") {
		// yaml.v3 reports where the enclosing mapping or list starts, not the stray line.
		if bad := badIndent(lines, line); bad > 0 {
			line = bad
		}
	}
	col := 0
	if line >= 1 && line <= len(lines) {
		col = firstNonSpace(lines[line-1])
	}
	pos := Pos{File: file, Line: line, Col: col}
	for _, h := range yamlHints {
		if strings.Contains(msg, h.match) {
			return Errorf(pos, "%s", h.say)
		}
	}
	return Errorf(pos, "invalid YAML: %s", msg)
}

var yamlHints = []struct{ match, say string }{
	{"mapping values are not allowed in this context", "unexpected ':' — this line is indented deeper than the key above expects, or a value contains ': ' and must be put in quotes"},
	{"did not find expected key", "bad indentation: this line does not line up with the keys of the mapping it belongs to"},
	{"could not find expected ':'", "expected `key: value` here: a ':' is missing, or this line should be indented as part of the value above"},
	{"did not find expected '-' indicator", "bad indentation of a list: every '- item' of one list must start in the same column"},
	{"block sequence entries are not allowed in this context", "a '- item' cannot go here: check its indentation, or put it on its own line under the key"},
	{"found unexpected end of stream", "the file ends inside a quoted string or a [ ] / { } block: close the quote or bracket"},
	{"did not find expected ',' or ']'", "a [ ] list is not closed, or two items lack a ',' between them"},
	{"did not find expected ',' or '}'", "a { } mapping is not closed, or two entries lack a ',' between them"},
	{"found character that cannot start any token", "this line starts with a character YAML does not allow here (like @ or `); put the value in quotes"},
	{"found undefined alias", "an alias (*name) refers to an anchor (&name) that is not defined above it"},
	{"unknown anchor", "an alias (*name) refers to an anchor (&name) that is not defined above it"},
	{"control characters are not allowed", "the file contains control characters; is it a text file?"},
	{"invalid leading UTF-8 octet", "the file is not valid UTF-8 text"},
	{"invalid trailing UTF-8 octet", "the file is not valid UTF-8 text"},
	{"found unknown escape character", "unknown escape (\\x) in a double-quoted string: use single quotes, or write \\\\ for a backslash"},
	{"did not find expected alphabetic or numeric character", "an anchor or alias name (after & or *) is missing; quote the value if it starts with & or *"},
	{"did not find expected node content", "a value is missing here, or this line is indented wrongly"},
	{"did not find expected comment or line break", "unexpected text after a value on the same line: a quoted string is followed by more text, or a ':' or '#' needs quotes"},
	{"found a tab character", "tabs are not allowed for indentation; use spaces"},
}

// tabIndent finds a tab in the leading whitespace of the line after the error line, the error
// line or the lines just before it: yaml.v3 reports a tab that breaks indentation at the line
// before it, and other problems a tab causes at the line after. It returns 0 when there is none.
func tabIndent(lines []string, line int) (int, int) {
	if line < 1 {
		line = len(lines)
	}
	for l := min(line+1, len(lines)); l >= 1 && l >= line-2; l-- {
		s := lines[l-1]
		for i := 0; i < len(s); i++ {
			if s[i] == '\t' {
				return l, i + 1
			}
			if s[i] != ' ' {
				break
			}
		}
	}
	return 0, 0
}

func firstNonSpace(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			return i + 1
		}
	}
	return 1
}

// badIndent finds the first line at or after from whose indentation matches no open level:
// deeper lines open a level, shallower ones must return to one already open. Block scalars
// (| and >) and comments are skipped. It returns 0 when every line fits.
func badIndent(lines []string, from int) int {
	var levels []int
	block := -1 // indentation of the key whose block scalar is being skipped
	for i, s := range lines {
		t := strings.TrimLeft(s, " ")
		if t == "" || t[0] == '#' {
			continue
		}
		ind := len(s) - len(t)
		if block >= 0 {
			if ind > block {
				continue
			}
			block = -1
		}
		for len(levels) > 0 && levels[len(levels)-1] > ind {
			levels = levels[:len(levels)-1]
		}
		if len(levels) == 0 || levels[len(levels)-1] < ind {
			if len(levels) > 0 && i+1 > from && !opensBlock(lines, i) {
				// Deeper than a line that opened nothing: a stray indentation.
				return i + 1
			}
			levels = append(levels, ind)
		}
		if strings.HasPrefix(t, "- ") {
			// "- key: v" puts the item's keys two columns to the right of the dash.
			levels = append(levels, ind+2)
		}
		if v := strings.TrimSpace(t); strings.HasSuffix(v, "|") || strings.HasSuffix(v, ">") ||
			strings.HasSuffix(v, "|-") || strings.HasSuffix(v, ">-") || strings.HasSuffix(v, "|+") || strings.HasSuffix(v, ">+") {
			block = ind
		}
	}
	return 0
}

// opensBlock reports whether the last meaningful line before i ends with ':' (a key whose
// value follows on the next lines) or is a list item, so a deeper line after it is expected.
func opensBlock(lines []string, i int) bool {
	for j := i - 1; j >= 0; j-- {
		t := strings.TrimSpace(lines[j])
		if t == "" || t[0] == '#' {
			continue
		}
		if k := strings.Index(t, " #"); k >= 0 {
			t = strings.TrimSpace(t[:k])
		}
		return strings.HasSuffix(t, ":") || strings.HasPrefix(t, "- ") || t == "-"
	}
	return true
}
