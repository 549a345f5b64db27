package plan

import (
	"runtime"
	"testing"
	"time"
	"weak"
)

// The compiled-routine cache must not keep a routine alive: a daemon plans configs from many
// commits, and a strong cache would hold all of them.
func TestCompiledCacheLetsRoutinesGo(t *testing.T) {
	cfg := loadYAML(t, map[string]string{"r.yaml": `
on: {push: {}}
agents:
  a: {command: [echo, "${{ event.ref }}"], image: alpine:3}
`})
	r := cfg.Routines[0]
	if errs := Compile(cfg); len(errs) > 0 {
		t.Fatal(errs)
	}
	key := weak.Make(r)
	if _, ok := compiledCache.Load(key); !ok {
		t.Fatal("Compile did not cache the routine")
	}
	cfg, r = nil, nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if _, ok := compiledCache.Load(key); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache still holds a routine nothing else references")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
