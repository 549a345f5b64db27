package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/overview"
)

func init() { register(newReviewCmd) }

func newReviewCmd(s *streams) *cobra.Command {
	var a apiFlags
	var since string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "review",
		Short: "The morning review: the runs finished since a time, with their pull requests, changes, reports, verdicts and cost",
		Long: `Print the runs the daemon at --server finished since --since (default: the last 24 hours),
newest first: each run's conclusion, pull request, diff stat, verdicts, cost and the first
paragraph of its report. The control room shows the same at /ui/review.
--since takes a duration back from now (24h, 90m, 3d), a date (2006-01-02) or a time
(2006-01-02T15:04:05Z). --json prints the API's answer (GET /api/v1/review).`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/review?" + url.Values{"since": {since}}.Encode()
			if asJSON {
				var buf bytes.Buffer
				if err := a.call(cmd.Context(), http.MethodGet, path, nil, &buf); err != nil {
					return err
				}
				// Agents wrote some of the strings. encoding/json escapes C0 controls but not
				// C1 ones or bidi overrides; termsafe writes those as \u escapes, which keeps
				// the JSON valid and equal.
				_, err := io.WriteString(s.Out, termsafe.Text(buf.String()))
				return err
			}
			var rv overview.Review
			if err := a.call(cmd.Context(), http.MethodGet, path, nil, &rv); err != nil {
				return err
			}
			printReview(s.Out, &rv)
			return nil
		},
	}
	a.add(cmd.Flags())
	cmd.Flags().StringVar(&since, "since", "24h", "since when: a duration back from now (24h, 3d), a date or an RFC 3339 time")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the review as JSON")
	return cmd
}

// printReview prints a review compactly: a line per run, then its details indented. Every
// string an agent or a repository controls goes through termsafe.
func printReview(w io.Writer, rv *overview.Review) {
	fmt.Fprintf(w, "%s finished since %s", english.Count(len(rv.Items), "run"), rv.Since.UTC().Format("2006-01-02 15:04 UTC"))
	if rv.Usage.CostUSD > 0 || rv.Usage.InputTokens > 0 {
		fmt.Fprintf(w, " · $%.2f · %d tokens in, %d out", rv.Usage.CostUSD, rv.Usage.InputTokens, rv.Usage.OutputTokens)
	}
	fmt.Fprintln(w)
	if rv.Truncated {
		fmt.Fprintf(w, "(only the newest %d: give a later --since to see the others)\n", len(rv.Items))
	}
	for _, it := range rv.Items {
		fmt.Fprintf(w, "\n%s  %s  %s (%s)  run %s", dash(termsafe.Line(it.Conclusion)), termsafe.Line(it.Repo),
			termsafe.Line(it.Routine), termsafe.Line(it.Trigger), termsafe.Line(it.RunID))
		if it.Duration != "" {
			fmt.Fprintf(w, "  %s", it.Duration)
		}
		if it.Usage.CostUSD > 0 {
			fmt.Fprintf(w, "  $%.2f", it.Usage.CostUSD)
		}
		fmt.Fprintln(w)
		if it.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", termsafe.Line(it.Error))
		}
		if pr := it.PullRequest; pr != nil {
			fmt.Fprintf(w, "    pull request #%d %s\n", pr.Number, termsafe.Line(pr.HTMLURL))
		}
		if d := it.Diff; d.Files > 0 || d.Additions > 0 || d.Deletions > 0 {
			fmt.Fprintf(w, "    %s, +%d -%d", english.Count(d.Files, "file"), d.Additions, d.Deletions)
			if d.Conflicts > 0 {
				fmt.Fprintf(w, ", %s", english.Count(d.Conflicts, "conflict"))
			}
			if d.Partial {
				fmt.Fprint(w, " (counted in part: the patch is big)")
			}
			fmt.Fprintln(w)
		}
		for _, v := range it.Verdicts {
			fmt.Fprintf(w, "    %s\n", verdictLine(v))
		}
		for _, l := range strings.Split(overview.FirstParagraph(it.Summary), "\n") {
			if l != "" {
				fmt.Fprintf(w, "    │ %s\n", termsafe.Line(l))
			}
		}
		if it.Partial {
			fmt.Fprintln(w, "    (some of the run's files could not be read)")
		}
	}
}

func verdictLine(v overview.Verdict) string {
	outcome := "no quorum"
	if v.Reached {
		outcome = termsafe.Line(v.Winner)
	}
	var tally []string
	for k, n := range v.Tally {
		tally = append(tally, fmt.Sprintf("%s %d", termsafe.Line(k), n))
	}
	sort.Strings(tally)
	s := fmt.Sprintf("%s.%s: %s", termsafe.Line(v.Agent), termsafe.Line(v.Key), outcome)
	if len(tally) > 0 {
		s += " (" + strings.Join(tally, ", ")
		if v.Quorum > 0 {
			s += fmt.Sprintf("; quorum %d", v.Quorum)
		}
		s += ")"
	}
	if v.Judge != "" {
		s += " judged by " + termsafe.Line(v.Judge)
	}
	return s
}
