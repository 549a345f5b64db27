package workspace

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// git's untracked cache (the index's UNTR extension) is valid only where its identity says:
// "Location <work tree>, system <kernel name>", one NUL-terminated string per place it may be
// used — but git compares only the first (dir.c, ident_in_untracked). Built on the host, it
// names the shared checkout's path; the container sees the same tree at /workspace.
// setUntrackedIdent makes that the identity, so that git in every container uses the cache
// instead of rebuilding it (and copying the whole index up). Only the parts of the index format
// needed to find the extension are read (gitformat-index(5)).

// setUntrackedIdent makes "Location <location>, system <this kernel>" the identity of the
// untracked cache in the index file at path, rewriting its checksum. An index without an
// untracked cache, or in a form this does not know, is an error and left as it was.
func setUntrackedIdent(path, location string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	ident := fmt.Sprintf("Location %s, system %s\x00", location, unix.ByteSliceToString(uts.Sysname[:]))
	out, err := withUntrackedIdent(data, ident)
	if err != nil {
		return fmt.Errorf("index %s: %w", path, err)
	}
	if out == nil {
		return nil // already there
	}
	tmp := path + ".agentrunner-tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

const indexHashLen = sha1.Size

// withUntrackedIdent returns index data whose untracked cache has the identity ident (a
// NUL-terminated string); nil when it already had.
func withUntrackedIdent(data []byte, ident string) ([]byte, error) {
	if len(data) < 12+indexHashLen || string(data[:4]) != "DIRC" {
		return nil, errors.New("not a git index")
	}
	body, sum := data[:len(data)-indexHashLen], data[len(data)-indexHashLen:]
	if got := sha1.Sum(body); !bytes.Equal(got[:], sum) {
		return nil, errors.New("checksum mismatch (not a SHA-1 index, or damaged)")
	}
	version := binary.BigEndian.Uint32(data[4:8])
	n := binary.BigEndian.Uint32(data[8:12])
	off, err := skipIndexEntries(body, version, n)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Write(body[:off])
	found := false
	for off < len(body) {
		if len(body)-off < 8 {
			return nil, errors.New("truncated extension header")
		}
		sig := string(body[off : off+4])
		size := int(binary.BigEndian.Uint32(body[off+4 : off+8]))
		if size < 0 || size > len(body)-off-8 {
			return nil, fmt.Errorf("extension %q overruns the index", sig)
		}
		ext := body[off+8 : off+8+size]
		off += 8 + size
		switch sig {
		case "EOIE", "IEOT", "link":
			// These checksum or point into the rest; rewriting them is not worth it.
			return nil, fmt.Errorf("index has a %q extension", sig)
		case "UNTR":
			var err error
			if ext, err = setIdent(ext, ident); err != nil {
				return nil, err
			}
			if ext == nil {
				return nil, nil
			}
			found = true
		}
		var hdr [8]byte
		copy(hdr[:4], sig)
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(ext)))
		out.Write(hdr[:])
		out.Write(ext)
	}
	if !found {
		return nil, errors.New("index has no untracked cache")
	}
	sumNew := sha1.Sum(out.Bytes())
	out.Write(sumNew[:])
	return out.Bytes(), nil
}

// setIdent returns the UNTR extension ext with ident as its identity; nil when it is already.
func setIdent(ext []byte, ident string) ([]byte, error) {
	l, n := decodeGitVarint(ext)
	if n == 0 || l > uint64(len(ext)-n) {
		return nil, errors.New("untracked cache: bad identity length")
	}
	if string(ext[n:n+int(l)]) == ident {
		return nil, nil
	}
	var out bytes.Buffer
	out.Write(encodeGitVarint(uint64(len(ident))))
	out.WriteString(ident)
	out.Write(ext[n+int(l):])
	return out.Bytes(), nil
}

// skipIndexEntries returns the offset just past the n entries of an index of version.
func skipIndexEntries(b []byte, version, n uint32) (int, error) {
	if version < 2 || version > 4 {
		return 0, fmt.Errorf("index version %d", version)
	}
	const fixed = 40 + indexHashLen + 2 // stat data, object id, flags
	off := 12
	for i := uint32(0); i < n; i++ {
		start := off
		if len(b)-off < fixed {
			return 0, errors.New("truncated entry")
		}
		flags := binary.BigEndian.Uint16(b[off+fixed-2 : off+fixed])
		off += fixed
		if flags&0x4000 != 0 {
			if version < 3 {
				return 0, errors.New("extended flags in a version 2 index")
			}
			off += 2
		}
		if version == 4 {
			// The path is prefix-compressed: a varint of bytes to drop, then the rest, NUL-ended.
			_, k := decodeGitVarint(b[min(off, len(b)):])
			if k == 0 {
				return 0, errors.New("bad path prefix length")
			}
			off += k
		}
		end := bytes.IndexByte(b[min(off, len(b)):], 0)
		if end < 0 {
			return 0, errors.New("unterminated entry path")
		}
		off += end + 1
		if version < 4 {
			// 1 to 8 NULs pad the entry to a multiple of 8 bytes.
			off = start + (off-1-start+8)&^7
		}
		if off > len(b) {
			return 0, errors.New("truncated entry")
		}
	}
	return off, nil
}

// decodeGitVarint reads git's variable-width integer (varint.c: each continuation adds one, so
// every value has exactly one encoding); n is 0 when b holds none.
func decodeGitVarint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	c := b[0]
	v = uint64(c & 127)
	n = 1
	for c&128 != 0 {
		if n >= len(b) || n > 9 {
			return 0, 0
		}
		v++
		c = b[n]
		n++
		v = v<<7 + uint64(c&127)
	}
	return v, n
}

// encodeGitVarint is decodeGitVarint's inverse.
func encodeGitVarint(v uint64) []byte {
	var buf [16]byte
	pos := len(buf) - 1
	buf[pos] = byte(v & 127)
	for v >>= 7; v != 0; v >>= 7 {
		v--
		pos--
		buf[pos] = 128 | byte(v&127)
	}
	return buf[pos:]
}
