package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-im/mayfly/fabric/mailbox"
)

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	wsConns  prometheus.Gauge
	wsClosed *prometheus.CounterVec
	wsFrames *prometheus.CounterVec
	// delivered and deliverLatency count live pushes of messages.
	delivered      prometheus.Counter
	deliverLatency prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_http_requests_total", Help: "HTTP API requests by route and result code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mayfly_http_request_seconds", Help: "HTTP API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		wsConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mayfly_ws_connections", Help: "Open WebSocket connections.",
		}),
		wsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_ws_closed_total", Help: "Closed WebSocket connections by reason.",
		}, []string{"reason"}),
		wsFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_ws_frames_total", Help: "WebSocket frames received by type and result code.",
		}, []string{"type", "code"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_messages_delivered_total",
			Help: "Messages pushed live to at least one WebSocket connection of their mailbox's owner on this gateway.",
		}),
		deliverLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mayfly_message_deliver_seconds",
			Help:    "Time from the relay accepting a message to this gateway pushing it to the recipient's WebSocket connections (send to deliver; received messages only).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.wsConns, m.wsClosed, m.wsFrames, m.delivered, m.deliverLatency)
	return m
}

// deliveredLive counts a message pushed to its owner's connections.
func (m *metrics) deliveredLive(msg mailbox.Message) {
	m.delivered.Inc()
	if !msg.Self && !msg.SentAt.IsZero() {
		m.deliverLatency.Observe(max(time.Since(msg.SentAt).Seconds(), 0))
	}
}
