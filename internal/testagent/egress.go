package main

// Steps for the egress proxy's integration tests (package egress). They print one result
// line each and never fail, so one container can try many destinations:
//
//	fetch URL      GET URL through $HTTP(S)_PROXY (TLS not verified: test upstreams are
//	               self-signed); a leading $VAR is expanded; sends x-api-key: $ANTHROPIC_API_KEY
//	               when set, like a model CLI. Prints `FETCH URL => <status> <body>` or `=> error: …`.
//	dial ADDR      a direct TCP connection, bypassing any proxy: `DIAL ADDR => ok|error: …`.
//	resolve NAME   `RESOLVE NAME => <addrs>|error: …`.
//	scan HEX       looks for a secret (given XORed with 0x5a, hex-encoded, so the argv never
//	               holds it) in the environment, in every readable file, and in /proc/*/environ
//	               and cmdline: `SCAN clean` or `SCAN found in <places>`.

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func init() {
	steps["fetch"] = step{1, fetch}
	steps["dial"] = step{1, dial}
	steps["resolve"] = step{1, resolve}
	steps["scan"] = step{1, scan}
}

func fetch(a []string) error {
	u := a[0]
	if strings.HasPrefix(u, "$") {
		u = os.ExpandEnv(u)
	}
	tr := &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test upstream
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		fmt.Printf("FETCH %s => error: %v\n", a[0], err)
		return nil
	}
	if k := os.Getenv("ANTHROPIC_API_KEY"); k != "" {
		req.Header.Set("x-api-key", k)
	}
	resp, err := c.Do(req)
	if err != nil {
		fmt.Printf("FETCH %s => error: %v\n", a[0], err)
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Printf("FETCH %s => %d %s\n", a[0], resp.StatusCode, strings.TrimSpace(string(body)))
	return nil
}

func dial(a []string) error {
	c, err := net.DialTimeout("tcp", a[0], 3*time.Second)
	if err != nil {
		fmt.Printf("DIAL %s => error: %v\n", a[0], err)
		return nil
	}
	c.Close()
	fmt.Printf("DIAL %s => ok\n", a[0])
	return nil
}

func resolve(a []string) error {
	addrs, err := net.LookupHost(a[0])
	if err != nil {
		fmt.Printf("RESOLVE %s => error: %v\n", a[0], err)
		return nil
	}
	fmt.Printf("RESOLVE %s => %s\n", a[0], strings.Join(addrs, ","))
	return nil
}

func scan(a []string) error {
	raw, err := hex.DecodeString(a[0])
	if err != nil || len(raw) == 0 {
		return fmt.Errorf("scan: %q is not hex", a[0])
	}
	for i := range raw {
		raw[i] ^= 0x5a
	}
	secret := string(raw)
	var found []string
	for _, kv := range os.Environ() {
		if strings.Contains(kv, secret) {
			found = append(found, "env")
		}
	}
	check := func(path string) {
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), secret) {
			found = append(found, path)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		check(p + "/environ")
		check(p + "/cmdline")
	}
	files := 0
	_ = filepath.WalkDir("/", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (path == "/proc" || path == "/sys" || path == "/dev") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil && info.Size() < 64<<20 {
				files++
				check(path)
			}
		}
		return nil
	})
	if len(found) > 0 {
		fmt.Printf("SCAN found in %s\n", strings.Join(found, ", "))
		return nil
	}
	fmt.Printf("SCAN clean (%d files, %d processes)\n", files, len(procs))
	return nil
}
