package proxy

import (
	"strings"
)

// Price is what a model charges, in US dollars per million tokens.
type Price struct {
	Input      float64 `json:"input" yaml:"input"`
	Output     float64 `json:"output" yaml:"output"`
	CacheRead  float64 `json:"cache_read,omitempty" yaml:"cache-read"`
	CacheWrite float64 `json:"cache_write,omitempty" yaml:"cache-write"`
}

// DefaultPrices are list prices of current models (USD per million tokens), by model name
// prefix; the longest prefix that matches wins. runner.yaml's `prices:` adds to and overrides
// them: check them against your provider's price list.
var DefaultPrices = Prices{
	"claude-opus-4":     {Input: 15, Output: 75, CacheRead: 1.5, CacheWrite: 18.75},
	"claude-opus-4-5":   {Input: 5, Output: 25, CacheRead: 0.5, CacheWrite: 6.25},
	"claude-sonnet-4":   {Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75},
	"claude-3-7-sonnet": {Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75},
	"claude-haiku-4":    {Input: 1, Output: 5, CacheRead: 0.1, CacheWrite: 1.25},
	"claude-3-5-haiku":  {Input: 0.8, Output: 4, CacheRead: 0.08, CacheWrite: 1},
	"gpt-5":             {Input: 1.25, Output: 10, CacheRead: 0.125},
	"gpt-5-mini":        {Input: 0.25, Output: 2, CacheRead: 0.025},
	"gpt-4.1":           {Input: 2, Output: 8, CacheRead: 0.5},
	"gpt-4.1-mini":      {Input: 0.4, Output: 1.6, CacheRead: 0.1},
	"gpt-4o":            {Input: 2.5, Output: 10, CacheRead: 1.25},
	"gpt-4o-mini":       {Input: 0.15, Output: 0.6, CacheRead: 0.075},
	"o3":                {Input: 2, Output: 8, CacheRead: 0.5},
	"o4-mini":           {Input: 1.1, Output: 4.4, CacheRead: 0.275},
	"codex-mini":        {Input: 1.5, Output: 6, CacheRead: 0.375},
	"gemini-2.5-pro":    {Input: 1.25, Output: 10, CacheRead: 0.31},
	"gemini-2.5-flash":  {Input: 0.3, Output: 2.5, CacheRead: 0.075},
}

// Prices maps model name prefixes to prices.
type Prices map[string]Price

// Cost prices u. A model no prefix matches is priced as the dearest model of the table, so an
// unknown model never slips under a budget; known says whether it matched.
func (p Prices) Cost(u Usage) (usd float64, known bool) {
	price, known := p.lookup(u.Model)
	cost := float64(u.InputTokens)*price.Input + float64(u.OutputTokens)*price.Output +
		float64(u.CacheReadTokens)*price.CacheRead + float64(u.CacheWriteTokens)*price.CacheWrite
	return cost / 1e6, known
}

func (p Prices) lookup(model string) (Price, bool) {
	model = strings.ToLower(model)
	model = model[strings.LastIndexByte(model, '/')+1:] // "models/gemini-2.5-pro", "openai/gpt-5"
	best, bestLen := Price{}, -1
	for prefix, price := range p {
		if strings.HasPrefix(model, prefix) && len(prefix) > bestLen {
			best, bestLen = price, len(prefix)
		}
	}
	if bestLen >= 0 {
		return best, true
	}
	var dear Price
	for _, price := range p {
		if price.Output > dear.Output {
			dear = price
		}
	}
	return dear, false
}
