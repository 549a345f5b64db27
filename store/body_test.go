package store

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func TestBodiesRoundTripWhateverTheirShape(t *testing.T) {
	random := make([]byte, 4096)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		body       []byte
		compressed bool
	}{
		{"a small body is stored as is", []byte(`{"zen":"Keep it logically awesome."}`), false},
		{"a large JSON payload is deflated", []byte(`{"commits":[` + strings.Repeat(`{"id":"abc","message":"fix"},`, 800) + `{}]}`), true},
		{"incompressible bytes are stored as is", random, false},
		{"an empty body stays empty", nil, false},
		{"bytes that start like a deflated body are deflated, small", append(append([]byte{}, bodyMagic...), "log"...), true},
		{"bytes that start like a deflated body are deflated, incompressible", append(append([]byte{}, bodyMagic...), random...), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored := encodeBody(tc.body)
			if got := bytes.HasPrefix(stored, bodyMagic); got != tc.compressed {
				t.Errorf("compressed = %v, want %v (stored %d of %d bytes)", got, tc.compressed, len(stored), len(tc.body))
			}
			back, err := decodeBody(stored)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, tc.body) && !(len(back) == 0 && len(tc.body) == 0) {
				t.Errorf("the body did not survive the round trip")
			}
		})
	}
	if _, err := decodeBody(append(append([]byte{}, bodyMagic...), 0xff, 0x00)); err == nil {
		t.Error("a corrupt deflated body decoded without error")
	}
}
