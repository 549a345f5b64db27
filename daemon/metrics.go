package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentrunner/agentrunner/runner/result"
)

// Metrics are the daemon's Prometheus collectors. Register them with Register.
type Metrics struct {
	deliveries *prometheus.CounterVec
	runs       *prometheus.CounterVec
	running    prometheus.GaugeFunc
	queue      *queueCollector
	spend      *prometheus.CounterVec
}

func newMetrics(d *Daemon) *Metrics {
	return &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentrunner_deliveries_total",
			Help: "Deliveries (webhooks, dispatches, schedule ticks) handed to this daemon, by event and whether they were new.",
		}, []string{"event", "result"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentrunner_runs_total",
			Help: "Runs this daemon concluded, by conclusion.",
		}, []string{"conclusion"}),
		running: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "agentrunner_runs_running",
			Help: "Run jobs this daemon holds now (running or waiting for their concurrency group).",
		}, func() float64 { return float64(d.running.Load()) }),
		spend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentrunner_model_spend_usd_total",
			Help: "Model spend the egress proxies metered for this daemon's runs, in US dollars, by repository and routine.",
		}, []string{"repo", "routine"}),
		queue: &queueCollector{d: d, desc: prometheus.NewDesc("agentrunner_queue_jobs",
			"Jobs in the shared queue, by state (read from the store at scrape time).", []string{"state"}, nil)},
	}
}

// Register adds the collectors to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.deliveries, m.runs, m.running, m.queue, m.spend} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// DeliveryRecorded counts a delivery recorded outside the daemon (the GitHub webhook handler
// writing to the store itself).
func (m *Metrics) DeliveryRecorded(event string, fresh bool) {
	m.deliveries.WithLabelValues(event, freshLabel(fresh)).Inc()
}

type queueCollector struct {
	d    *Daemon
	desc *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := q.d.o.Store.CountJobs(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(q.desc, err)
		return
	}
	for _, st := range []string{"available", "leased", "completed", "dead", "cancelled"} {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}

// meteredSpend is what the proxy metered of a run's model calls.
func meteredSpend(res *result.Run) float64 {
	var usd float64
	for _, j := range res.Jobs {
		if j.Metered != nil {
			usd += j.Metered.USD
		}
	}
	return usd
}
