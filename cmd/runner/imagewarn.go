package main

import (
	"strings"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/images"
	"github.com/agentrunner/agentrunner/sandbox"
)

// unqualifiedImages is a warning for each agent whose image names no registry host and would
// be pulled (its pull-policy is not never): Docker would take it from Docker Hub, where whoever
// owns the namespace decides what runs in the sandbox. The routines stay valid.
func unqualifiedImages(cfg *config.Config) config.Errors {
	var out config.Errors
	seen := map[string]bool{}
	for _, r := range cfg.Routines {
		for _, a := range r.Agents {
			if a.Image == "" || strings.Contains(a.Image, "${{") || a.PullPolicy == sandbox.PullNever || !images.Unqualified(a.Image) {
				continue
			}
			pos := a.Pos
			if p, ok := a.ValuePos["image"]; ok {
				pos = p
			}
			e := &config.Error{Pos: pos, Msg: "warning: " + images.UnqualifiedWarning(a.Image)}
			if key := e.Error(); !seen[key] {
				seen[key] = true
				out = append(out, e)
			}
		}
	}
	return out
}
