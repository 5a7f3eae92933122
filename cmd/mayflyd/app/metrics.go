package app

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mayfly-im/mayfly/fabric/mailbox"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/schema"
)

// Metric families the app adds to the gateway's (docs/operations.md lists
// them all). Labels take values from closed sets only: schema error codes,
// mailbox operations, micro endpoint names, fixed words; never user ids.

// messageMetrics counts what the mailbox does; it is the mailbox's
// Observer.
type messageMetrics struct {
	sent         prometheus.Counter
	refused      *prometheus.CounterVec   // code
	sendSeconds  prometheus.Histogram     // send to ack, accepted sends
	burned       *prometheus.CounterVec   // op: read, recall
	burnFailures *prometheus.CounterVec   // op, code
	burnSeconds  *prometheus.HistogramVec // op
	replayed     prometheus.Counter
	replaySize   prometheus.Histogram
	timeouts     *prometheus.CounterVec // op
}

// latencyBuckets span 0.5 ms to about 16 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

func newMessageMetrics(reg prometheus.Registerer) *messageMetrics {
	m := &messageMetrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_messages_sent_total", Help: "Messages the relay stored for their recipient (sends acknowledged, retries of one message id included).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_messages_refused_total", Help: "Sends that failed, by client error code (internal for faults the client does not see).",
		}, []string{"code"}),
		sendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mayfly_message_send_seconds", Help: "Time the relay took to store an accepted message in both mailboxes (send to ack).", Buckets: latencyBuckets,
		}),
		burned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_messages_burned_total", Help: "Messages deleted from the mailboxes: op read (burn after reading) or recall.",
		}, []string{"op"}),
		burnFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_message_burn_failures_total", Help: "Reads and recalls that failed, by op and client error code (unknown_message is usually a message another device burned first).",
		}, []string{"op", "code"}),
		burnSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mayfly_message_burn_seconds", Help: "Time a successful read (burn) or recall took, both copies deleted.", Buckets: latencyBuckets,
		}, []string{"op"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mayfly_messages_replayed_total", Help: "Messages returned by replay (WebSocket sync and NATS-native sync).",
		}),
		replaySize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mayfly_replay_messages", Help: "Messages returned by one replay request.", Buckets: []float64{0, 1, 4, 16, 64, 256, 1000},
		}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_jetstream_timeouts_total", Help: "Mailbox operations that failed because JetStream did not answer in time, by op.",
		}, []string{"op"}),
	}
	reg.MustRegister(m.sent, m.refused, m.sendSeconds, m.burned, m.burnFailures, m.burnSeconds, m.replayed, m.replaySize, m.timeouts)
	return m
}

// Done implements mailbox.Observer.
func (m *messageMetrics) Done(op string, took time.Duration, n int, err error) {
	if err != nil && isTimeout(err) {
		m.timeouts.WithLabelValues(op).Inc()
	}
	switch op {
	case mailbox.OpSend:
		if err != nil {
			m.refused.WithLabelValues(string(schema.AsError(err).Code)).Inc()
			return
		}
		m.sent.Inc()
		m.sendSeconds.Observe(took.Seconds())
	case mailbox.OpRead, mailbox.OpRecall:
		if err != nil {
			m.burnFailures.WithLabelValues(op, string(schema.AsError(err).Code)).Inc()
			return
		}
		m.burned.WithLabelValues(op).Inc()
		m.burnSeconds.WithLabelValues(op).Observe(took.Seconds())
	case mailbox.OpFetch:
		if err == nil {
			m.replayed.Add(float64(n))
			m.replaySize.Observe(float64(n))
		}
	}
}

// nativeMetrics counts the NATS-native service's requests; it is the
// natsapi Observer.
type nativeMetrics struct {
	requests *prometheus.CounterVec   // op, code
	seconds  *prometheus.HistogramVec // op
}

func newNativeMetrics(reg prometheus.Registerer) *nativeMetrics {
	m := &nativeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mayfly_native_requests_total", Help: "Requests of NATS-native clients served by this process, by operation and result code (ok or the error code).",
		}, []string{"op", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mayfly_native_request_seconds", Help: "Time the NATS-native service took to serve a request, by operation.", Buckets: latencyBuckets,
		}, []string{"op"}),
	}
	reg.MustRegister(m.requests, m.seconds)
	return m
}

// Request implements natsapi.Observer.
func (m *nativeMetrics) Request(op string, took time.Duration, code string) {
	m.requests.WithLabelValues(op, code).Inc()
	m.seconds.WithLabelValues(op).Observe(took.Seconds())
}

// isTimeout reports whether err says NATS or JetStream did not answer.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}

// scrapeTimeout bounds the requests one scrape of the state collector makes.
const scrapeTimeout = 3 * time.Second

// presenceStream is the stream behind the presence KV bucket (the
// presence service's default bucket name).
const presenceStream = "KV_presence"

// stateCollector reads state at scrape time: Postgres pool and liveness,
// JetStream API counters and liveness, presence writes, stored mailbox
// messages, NATS-native service counters and client connections.
type stateCollector struct {
	a *App
}

var (
	descPGUp        = prometheus.NewDesc("mayfly_postgres_up", "1 when Postgres answered a ping during this scrape, else 0.", nil, nil)
	descPGConns     = prometheus.NewDesc("mayfly_postgres_pool_connections", "Connections in the Postgres pool by state (acquired, idle, constructing).", []string{"state"}, nil)
	descPGMax       = prometheus.NewDesc("mayfly_postgres_pool_max_connections", "Largest size of the Postgres pool.", nil, nil)
	descPGAcquires  = prometheus.NewDesc("mayfly_postgres_pool_acquires_total", "Connections acquired from the Postgres pool.", nil, nil)
	descPGEmpty     = prometheus.NewDesc("mayfly_postgres_pool_empty_acquires_total", "Acquires that had to wait because the pool had no idle connection.", nil, nil)
	descPGWait      = prometheus.NewDesc("mayfly_postgres_pool_acquire_wait_seconds_total", "Time spent waiting for a pool connection.", nil, nil)
	descJSUp        = prometheus.NewDesc("mayfly_jetstream_up", "1 when JetStream answered an account info request during this scrape, else 0.", nil, nil)
	descJSAPI       = prometheus.NewDesc("mayfly_jetstream_api_requests_total", "JetStream API requests of the MAYFLY account, as the server counts them (all processes of the deployment).", nil, nil)
	descJSAPIErrors = prometheus.NewDesc("mayfly_jetstream_api_errors_total", "JetStream API requests of the MAYFLY account that the server answered with an error.", nil, nil)
	descPresence    = prometheus.NewDesc("mayfly_presence_writes_total", "Writes to the presence bucket (its stream's last sequence; all processes of the deployment).", nil, nil)
	descMailboxMsgs = prometheus.NewDesc("mayfly_mailbox_messages", "Messages stored in all mailbox streams now (both copies of each unread message).", nil, nil)
	descNATSConns   = prometheus.NewDesc("mayfly_nats_client_connections", "Client connections to the embedded NATS server by transport (nats, websocket), Mayfly's own excluded.", []string{"transport"}, nil)
)

// Describe sends nothing: the collector is unchecked, as its families
// depend on what runs (the embedded server, the NATS-native service).
func (c stateCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	c.collectPostgres(ctx, ch)
	c.collectJetStream(ctx, ch)
	c.collectConnections(ch)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func up(err error) float64 {
	if err != nil {
		return 0
	}
	return 1
}

func (c stateCollector) collectPostgres(ctx context.Context, ch chan<- prometheus.Metric) {
	ch <- gauge(descPGUp, up(c.a.db.Ping(ctx)))
	st := c.a.db.Pool().Stat()
	ch <- gauge(descPGConns, float64(st.AcquiredConns()), "acquired")
	ch <- gauge(descPGConns, float64(st.IdleConns()), "idle")
	ch <- gauge(descPGConns, float64(st.ConstructingConns()), "constructing")
	ch <- gauge(descPGMax, float64(st.MaxConns()))
	ch <- counter(descPGAcquires, float64(st.AcquireCount()))
	ch <- counter(descPGEmpty, float64(st.EmptyAcquireCount()))
	ch <- counter(descPGWait, st.AcquireDuration().Seconds())
}

func (c stateCollector) collectJetStream(ctx context.Context, ch chan<- prometheus.Metric) {
	js, err := c.a.nc.JetStream(nats.Context(ctx))
	var info *nats.AccountInfo
	if err == nil {
		info, err = js.AccountInfo(nats.Context(ctx))
	}
	ch <- gauge(descJSUp, up(err))
	if err != nil {
		return
	}
	ch <- counter(descJSAPI, float64(info.API.Total))
	ch <- counter(descJSAPIErrors, float64(info.API.Errors))
	if si, err := js.StreamInfo(presenceStream, nats.Context(ctx)); err == nil {
		ch <- counter(descPresence, float64(si.State.LastSeq))
	}
	var stored uint64
	for p := range c.a.mailbox.Partitions() {
		si, err := js.StreamInfo("MBX_"+strconv.Itoa(p), nats.Context(ctx)) // mailbox package doc
		if err != nil {
			return // a partial sum would read as a drop
		}
		stored += si.State.Msgs
	}
	ch <- gauge(descMailboxMsgs, float64(stored))
}

// maxConnz bounds the connections one scrape lists.
const maxConnz = 1 << 20

func (c stateCollector) collectConnections(ch chan<- prometheus.Metric) {
	if c.a.node == nil {
		return
	}
	cz, err := c.a.node.Server().Connz(&server.ConnzOptions{Account: node.AppAccount, Username: true, Limit: maxConnz})
	if err != nil {
		return
	}
	counts := map[string]int{"nats": 0, "websocket": 0}
	for _, ci := range cz.Conns {
		if ci.AuthorizedUser == node.ServiceUser {
			continue
		}
		if strings.EqualFold(ci.Type, "websocket") {
			counts["websocket"]++
		} else {
			counts["nats"]++
		}
	}
	for t, n := range counts {
		ch <- gauge(descNATSConns, float64(n), t)
	}
}
