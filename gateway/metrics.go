package gateway

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	wsConns  prometheus.Gauge
	wsClosed *prometheus.CounterVec
	wsFrames *prometheus.CounterVec
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
	}
	reg.MustRegister(m.requests, m.latency, m.wsConns, m.wsClosed, m.wsFrames)
	return m
}
