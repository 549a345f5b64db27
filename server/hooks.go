package server

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// jobDirName is the directory the engine gives job id under <run>/jobs (runner's safeName):
// unsafe characters become '_' and a hash of the id keeps distinct ids apart.
func jobDirName(id string) string {
	var b strings.Builder
	changed := false
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	if !changed {
		return id
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("%s-%08x", b.String(), h.Sum32())
}
