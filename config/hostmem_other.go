//go:build !linux

package config

// physicalMemory is 0 (unknown) off Linux: memory limits then have no upper bound here, and
// the engine refuses what its host cannot give.
func physicalMemory() int64 { return 0 }
