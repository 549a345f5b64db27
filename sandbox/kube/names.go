package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Labels and annotations on every object the sandbox creates. Label values must be short and
// plain, so the readable job id and the exact owner live in annotations beside them.
const (
	LabelRun    = "agentrunner.io/run"
	LabelJob    = "agentrunner.io/job"
	LabelDaemon = "agentrunner.io/daemon"
	// LabelPod selects one agent's pod from its NetworkPolicy.
	LabelPod = "agentrunner.io/pod"

	AnnotationJob   = "agentrunner.io/job-id"
	AnnotationOwner = "agentrunner.io/owner" // sandbox.LabelOwner's value: "daemon:<id>" or "exec:…"
	AnnotationStore = "agentrunner.io/store"
)

// PodName is the name of the pod of job in run: the same for every attempt to claim it, so a
// daemon that claims a job again finds the pod it started instead of starting a second. It is
// a DNS label (lowercase alphanumerics and '-', at most 63 characters), with a hash of both ids
// so that two jobs whose readable names clash do not share a pod.
func PodName(runID, jobID string) string {
	sum := sha256.Sum256([]byte(runID + "\x00" + jobID))
	hash := hex.EncodeToString(sum[:])[:10]
	base := "ar-" + dnsPart(runID, 24) + "-" + dnsPart(jobID, 22)
	return strings.TrimRight(base, "-") + "-" + hash
}

// LabelValue makes s a valid label value: s itself when it is one, otherwise its plain
// characters with a hash of the whole (job ids like "audit[3]" and "lead/plan" are not).
func LabelValue(s string) string {
	if isLabelValue(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	hash := hex.EncodeToString(sum[:])[:12]
	if part := strings.Trim(dnsPart(s, 50), "-."); part != "" {
		return part + "-" + hash
	}
	return hash
}

// dnsPart is s lowercased with every character outside [a-z0-9] made '-', at most n long.
func dnsPart(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() >= n {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// isLabelValue follows Kubernetes' rule: at most 63 characters, alphanumerics, '-', '_' and
// '.', beginning and ending with an alphanumeric (or empty).
func isLabelValue(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i, r := range s {
		alnum := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !alnum && ((i == 0 || i == len(s)-1) || (r != '-' && r != '_' && r != '.')) {
			return false
		}
	}
	return true
}
