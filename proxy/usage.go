package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
)

// Usage is what one model call used, as the model API reported it in its response.
type Usage struct {
	Model            string `json:"model,omitempty"`
	InputTokens      int64  `json:"input_tokens"`
	OutputTokens     int64  `json:"output_tokens"`
	CacheReadTokens  int64  `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int64  `json:"cache_write_tokens,omitempty"`
}

// maxUsageBody bounds what the meter holds of a non-streaming response to find its usage.
const maxUsageBody = 8 << 20

// meter reads a model response's usage as the body passes to the agent, without delaying it:
// one JSON document, or server-sent events whose data lines carry usage (Anthropic's
// message_start and message_delta, OpenAI's last chat chunk or response.completed, Gemini's
// usageMetadata). Counters that an API repeats as running totals are taken at their largest.
type meter struct {
	sse  bool
	line []byte // an SSE line not yet ended
	body []byte // a JSON response, up to maxUsageBody
	over bool
	u    Usage
}

func newMeter(contentType string) *meter {
	return &meter{sse: strings.HasPrefix(strings.ToLower(contentType), "text/event-stream")}
}

func (m *meter) write(p []byte) {
	if !m.sse {
		if !m.over && len(m.body)+len(p) <= maxUsageBody {
			m.body = append(m.body, p...)
		} else {
			m.over, m.body = true, nil
		}
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(m.line)+len(p) <= 1<<20 {
				m.line = append(m.line, p...)
			}
			return
		}
		m.line = append(m.line, p[:i]...)
		m.sseLine(m.line)
		m.line = m.line[:0]
		p = p[i+1:]
	}
}

// sseLine reads one event line; only data lines that mention usage or the model are decoded.
func (m *meter) sseLine(l []byte) {
	d, ok := bytes.CutPrefix(bytes.TrimRight(l, "\r"), []byte("data:"))
	if !ok {
		return
	}
	if !bytes.Contains(d, []byte(`sage`)) && !bytes.Contains(d, []byte(`"model`)) {
		return // a text delta: most of a stream, and nothing to count
	}
	m.document(bytes.TrimSpace(d))
}

// finish reads a JSON body once it has all come.
func (m *meter) finish() Usage {
	if !m.sse && !m.over && len(m.body) > 0 {
		m.document(m.body)
	}
	if m.sse && len(m.line) > 0 {
		m.sseLine(m.line)
	}
	return m.u
}

// apiUsage is the union of the usage shapes of the model APIs the key endpoints serve.
type apiUsage struct {
	// Anthropic, and OpenAI's Responses API.
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	// OpenAI chat completions.
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// Gemini's usageMetadata.
	PromptTokenCount     int64 `json:"promptTokenCount"`
	CandidatesTokenCount int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount   int64 `json:"thoughtsTokenCount"`
	CachedContentTokens  int64 `json:"cachedContentTokenCount"`
}

type apiDocument struct {
	Model         string    `json:"model"`
	ModelVersion  string    `json:"modelVersion"`
	Usage         *apiUsage `json:"usage"`
	UsageMetadata *apiUsage `json:"usageMetadata"`
	Message       *struct {
		Model string    `json:"model"`
		Usage *apiUsage `json:"usage"`
	} `json:"message"`
	Response *struct {
		Model string    `json:"model"`
		Usage *apiUsage `json:"usage"`
	} `json:"response"`
}

func (m *meter) document(b []byte) {
	var d apiDocument
	if json.Unmarshal(b, &d) != nil {
		return
	}
	for _, model := range []string{d.Model, d.ModelVersion} {
		if model != "" && m.u.Model == "" {
			m.u.Model = model
		}
	}
	add := func(u *apiUsage) {
		if u == nil {
			return
		}
		m.u.InputTokens = max(m.u.InputTokens, u.InputTokens, u.PromptTokens, u.PromptTokenCount-u.CachedContentTokens)
		m.u.OutputTokens = max(m.u.OutputTokens, u.OutputTokens, u.CompletionTokens, u.CandidatesTokenCount+u.ThoughtsTokenCount)
		m.u.CacheReadTokens = max(m.u.CacheReadTokens, u.CacheReadInputTokens, u.CachedContentTokens)
		m.u.CacheWriteTokens = max(m.u.CacheWriteTokens, u.CacheCreationInputTokens)
	}
	add(d.Usage)
	add(d.UsageMetadata)
	if d.Message != nil {
		if m.u.Model == "" {
			m.u.Model = d.Message.Model
		}
		add(d.Message.Usage)
	}
	if d.Response != nil {
		if m.u.Model == "" {
			m.u.Model = d.Response.Model
		}
		add(d.Response.Usage)
	}
}

// meteredBody passes a response body on and, once it is read to its end or closed, reports
// the usage it held.
type meteredBody struct {
	rc   io.ReadCloser
	m    *meter
	once sync.Once
	done func(Usage)
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.m.write(p[:n])
	}
	if err != nil {
		b.report()
	}
	return n, err
}

func (b *meteredBody) Close() error {
	b.report()
	return b.rc.Close()
}

func (b *meteredBody) report() { b.once.Do(func() { b.done(b.m.finish()) }) }
