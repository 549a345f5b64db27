package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/fixture"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// idlePipeline is never reached: the benchmark measures intake only.
type idlePipeline struct{}

func (idlePipeline) Head(context.Context, event.Repo) (string, string, error) { return "", "", nil }
func (idlePipeline) Config(context.Context, event.Repo, string) (*config.Config, error) {
	return &config.Config{}, nil
}
func (idlePipeline) Plan(context.Context, *event.Event, string) (*plan.Plan, error) {
	return &plan.Plan{}, nil
}
func (idlePipeline) Run(context.Context, *event.Event, *plan.Run, string) (*result.Run, error) {
	return &result.Run{}, nil
}
func (idlePipeline) Conclude(context.Context, *event.Event, *plan.Run, string, result.Conclusion, string) error {
	return nil
}

// benchPayload is GitHub's own pull_request.opened delivery (28 KB), the size the webhook
// benchmarks call for, with the text a real delivery has, so compressing bodies in the store
// gains no more than it would in production.
func benchPayload(b *testing.B) []byte {
	return fixture.Webhook(b, "pull_request.opened.json")
}

type nopQueue struct{}

func (nopQueue) RecordDelivery(context.Context, store.Delivery) (bool, error) { return true, nil }

// benchWebhooks posts b.N signed push deliveries from 32 clients to the real webhook handler
// and reports acknowledged deliveries per second and the p99 time to the 202.
func benchWebhooks(b *testing.B, q server.Queue) {
	secret := []byte("s")
	srv, err := server.New(server.Config{WebhookSecret: secret, Queue: q})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	body := benchPayload(b)
	sig := github.Sign(secret, body)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	n := max(b.N, 2000)
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, hs.URL+server.WebhookPath, bytes.NewReader(body))
				req.Header.Set("X-GitHub-Event", "pull_request")
				req.Header.Set("X-GitHub-Delivery", "bench-"+strconv.Itoa(i))
				req.Header.Set("X-Hub-Signature-256", sig)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(n)/took.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ack-ms")
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ack-ms")
}

// Webhook intake, acknowledged only once persisted, against the same handler that persists
// nothing (the HTTP + signature + routing baseline).
func BenchmarkWebhookIntake(b *testing.B) {
	b.Run("baseline-no-store", func(b *testing.B) { benchWebhooks(b, nopQueue{}) })
	for _, tc := range []struct {
		name string
		db   storetest.NewDB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(tc.name, func(b *testing.B) {
			st := tc.db(b).Open(b)
			d, err := daemon.New(daemon.Options{Store: st, Pipeline: idlePipeline{}, Repos: &daemon.Repos{}})
			if err != nil {
				b.Fatal(err)
			}
			benchWebhooks(b, d)
		})
	}
}
