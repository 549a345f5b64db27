package runner

import (
	"bytes"
	"compress/zlib"
	"io"
)

// base85 is git's alphabet for binary patches (not Ascii85's).
const base85 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"

// binaryHunks calls found with the content of every "GIT binary patch" hunk in patch,
// inflated as a stream: the new file (literal) or the bytes a delta inserts, which is where a
// value written into a binary file shows; as patch text it is compressed and encoded, so a
// search of the text misses it. The content is never held whole (a small hunk can inflate to
// gigabytes): found reads it and says whether to go on.
func binaryHunks(patch []byte, found func(io.Reader) bool) {
	lines := bytes.Split(patch, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		if !bytes.HasPrefix(lines[i], []byte("literal ")) && !bytes.HasPrefix(lines[i], []byte("delta ")) {
			continue
		}
		var data []byte
		for i++; i < len(lines) && len(lines[i]) > 0; i++ {
			data = append(data, decode85Line(lines[i])...)
		}
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			continue
		}
		if !found(zr) {
			return
		}
	}
}

// streamHolds reports whether any of values occurs in what r reads, in windows of a fixed size
// that overlap by the longest value, so memory stays small whatever r holds.
func streamHolds(r io.Reader, values []string) (string, bool) {
	longest := 0
	for _, v := range values {
		longest = max(longest, len(v))
	}
	if longest == 0 {
		return "", false
	}
	buf := make([]byte, 0, 64<<10+longest)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		for _, v := range values {
			if v != "" && bytes.Contains(buf, []byte(v)) {
				return v, true
			}
		}
		if err != nil {
			return "", false
		}
		if len(buf) == cap(buf) {
			keep := longest - 1
			buf = append(buf[:0], buf[len(buf)-keep:]...)
		}
	}
}

// decode85Line decodes one line of a binary hunk: a length character (A-Z for 1-26 bytes,
// a-z for 27-52), then groups of five base85 characters for four bytes each.
func decode85Line(line []byte) []byte {
	var n int
	switch c := line[0]; {
	case c >= 'A' && c <= 'Z':
		n = int(c-'A') + 1
	case c >= 'a' && c <= 'z':
		n = int(c-'a') + 27
	default:
		return nil
	}
	var out []byte
	for p := line[1:]; len(p) >= 5; p = p[5:] {
		var v uint32
		for _, c := range p[:5] {
			d := bytes.IndexByte([]byte(base85), c)
			if d < 0 {
				return out
			}
			v = v*85 + uint32(d)
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out[:min(n, len(out))]
}
