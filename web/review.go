package web

import (
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/web/render"
)

// reviewSpans are the quick choices of the review page's since.
var reviewSpans = []string{"12h", "24h", "3d", "7d"}

// reviewItem is one run of the review page: the overview's item, its report's first paragraph
// rendered (sanitized) and its verdicts' tallies in a stable order.
type reviewItem struct {
	overview.ReviewItem
	SummaryHTML template.HTML
	PRLink      string // the pull request's address when it is a web link, else ""
	Votes       []reviewVerdict
}

type reviewVerdict struct {
	overview.Verdict
	Tally string
}

// review serves /ui/review?since=24h: the morning review (overview.ReviewSince) of the runs
// finished since then, across repositories, newest first.
func (u *UI) review(w http.ResponseWriter, r *http.Request) {
	se, _ := sessionFrom(r.Context())
	sinceText := strings.TrimSpace(r.URL.Query().Get("since"))
	if sinceText == "" {
		sinceText = "24h"
	}
	data := map[string]any{"Session": se.Session, "CSRF": se.csrfToken(), "SinceText": sinceText, "Spans": reviewSpans}
	now := time.Now()
	since, err := overview.ParseSince(sinceText, now)
	if err != nil {
		data["Error"] = err.Error()
		u.render(w, http.StatusBadRequest, "review", data)
		return
	}
	rv, err := overview.ReviewSince(r.Context(), u.runSource(r), since, now)
	if err != nil {
		u.log().Error("review", "err", err)
		http.Error(w, "cannot gather the review now; try again shortly", http.StatusServiceUnavailable)
		return
	}
	items := make([]reviewItem, len(rv.Items))
	for i, it := range rv.Items {
		items[i] = reviewItem{ReviewItem: it, SummaryHTML: render.Markdown([]byte(overview.FirstParagraph(it.Summary)))}
		if pr := it.PullRequest; pr != nil && (strings.HasPrefix(pr.HTMLURL, "https://") || strings.HasPrefix(pr.HTMLURL, "http://")) {
			items[i].PRLink = pr.HTMLURL
		}
		for _, v := range it.Verdicts {
			var tally []string
			for k, n := range v.Tally {
				tally = append(tally, k+" "+strconv.Itoa(n))
			}
			sort.Strings(tally)
			items[i].Votes = append(items[i].Votes, reviewVerdict{Verdict: v, Tally: strings.Join(tally, ", ")})
		}
	}
	data["Review"] = rv
	data["Items"] = items
	u.render(w, http.StatusOK, "review", data)
}
