package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// GET /api/v1/runs filters on the trigger and pages with the cursor its Link header gives.
func TestListRunsByTriggerPageByPage(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	base := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	for i := range 7 {
		ev := []string{"push", "schedule"}[i%2]
		if _, _, err := st.CreateRun(t.Context(), store.Run{ID: fmt.Sprintf("r%d", i), Repo: "o/r", Routine: "x", EventKind: ev, CreatedAt: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	get := readAPI(t, st, t.TempDir())
	var ids []string
	path := "/api/v1/runs?trigger=push&limit=2"
	for range 5 {
		code, body, hdr := get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var runs []server.RunView
		if err := json.Unmarshal([]byte(body), &runs); err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		link := hdr.Get("Link")
		if link == "" {
			break
		}
		if !strings.HasSuffix(link, `>; rel="next"`) || !strings.Contains(link, "trigger=push") {
			t.Fatalf("Link %q", link)
		}
		path = strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
	}
	// r6 r4 | r2 r0 | (empty, no Link)
	if fmt.Sprint(ids) != "[r6 r4 r2 r0]" {
		t.Errorf("push runs page by page = %v", ids)
	}
	for _, bad := range []string{"/api/v1/runs?limit=0", "/api/v1/runs?limit=5000", "/api/v1/runs?before=x"} {
		if code, body, _ := get(bad); code != http.StatusBadRequest || !strings.Contains(body, "want") {
			t.Errorf("GET %s: %d %s, want 400 saying what it takes", bad, code, body)
		}
	}
}
