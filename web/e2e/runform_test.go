package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentrunner/agentrunner/internal/browsertest"
	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// askRoutine takes an area (a choice) and a free-text prompt; its agent prints the prompt it
// was given, so the test reads back what the form sent.
func askRoutine() map[string]string {
	return map[string]string{
		"README.md": "hello\n",
		".agents/ask.yaml": `name: ask
description: Ask an agent about one area
on:
  dispatch:
    inputs:
      area: {required: true, options: [api, web], description: Which part of the code}
      prompt: {required: true, description: What the agent should do}
defaults: {image: ` + dockertest.TestAgentTag + `, timeout: 15m}
agents:
  a:
    prompt: "${{ inputs.area }}: ${{ inputs.prompt }}"
    command: [/testagent, echo-prompt]
`,
	}
}

// The Run form as a person uses it: the routines page lists the repository's routine, its
// page has the form, the form dispatches with a chosen input and a typed prompt, the browser
// lands on the new run, and the agent got that prompt. Both pages are photographed.
func TestRunFormInTheBrowser(t *testing.T) {
	d := startDaemon(t, askRoutine())
	tok := d.token("browser", "dispatch")
	p := browsertest.New(t)
	signIn(t, p, d.URL, tok)

	p.ClickAndWait(`header a[href="/ui/routines"]`)
	p.WaitText("main", Repo, 5*time.Second)
	p.Screenshots("routines")
	p.ClickAndWait(`a[href="/ui/repos/` + Repo + `"]`)
	p.WaitText("h1", Repo, 5*time.Second)
	if body := p.Text("main"); !strings.Contains(body, "Ask an agent about one area") || !strings.Contains(body, "dispatch · inputs area, prompt") {
		t.Errorf("the repository page does not describe the routine; it shows:\n%s", body)
	}
	p.Do(chromedp.Click(chromedp.CSS(`#r-ask summary`), chromedp.NodeVisible)) // opens the form; no page load
	p.SetValue(`#in-ask-area`, "web")
	p.SetValue(`#in-ask-prompt`, "Find the <b>slow</b> handlers")
	p.Screenshots("run-form")
	p.ClickAndWait(`#r-ask form button[type=submit]`)
	m := runPath.FindStringSubmatch(p.URL())
	if m == nil {
		t.Fatalf("the Run form led to %s, want a run page; it shows:\n%s", p.URL(), p.Text("body"))
	}
	id := m[1]
	d.track(id)
	p.WaitText("h1", id, 5*time.Second)
	if r := d.waitRun(tok, id, "completed", 90*time.Second); r.Conclusion != "success" {
		t.Fatalf("the dispatched run concluded %s, want success", r.Conclusion)
	}
	req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/v1/runs/"+id+"/jobs/a/log", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(log), "web: Find the <b>slow</b> handlers") {
		t.Errorf("the agent's log %q lacks the prompt the form sent", log)
	}
}
