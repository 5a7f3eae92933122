package main

import (
	"maps"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms record microseconds from 1 µs to 2 minutes with three
// significant digits.
const (
	histMin    = 1
	histMax    = int64(2 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// Counters are a generator's running totals, reported as progress. Every
// field only grows.
type Counters struct {
	Registered int64 `json:"registered"`
	LoggedIn   int64 `json:"logged_in"`
	Befriended int64 `json:"befriended"` // pairs
	Connected  int64 `json:"connected"`
	Sealed     int64 `json:"sealed"`
	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Delivered  int64 `json:"delivered"`
	Burned     int64 `json:"burned"`
	Errors     int64 `json:"errors"`
	Dropped    int64 `json:"dropped"` // connections lost
}

func (c *Counters) add(o Counters) {
	c.Registered += o.Registered
	c.LoggedIn += o.LoggedIn
	c.Befriended += o.Befriended
	c.Connected += o.Connected
	c.Sealed += o.Sealed
	c.Sent += o.Sent
	c.Acked += o.Acked
	c.Delivered += o.Delivered
	c.Burned += o.Burned
	c.Errors += o.Errors
	c.Dropped += o.Dropped
}

// liveCounters is the atomic form of Counters a Worker updates.
type liveCounters struct {
	registered, loggedIn, befriended, connected, sealed atomic.Int64
	sent, acked, delivered, burned, errors, dropped     atomic.Int64
}

func (l *liveCounters) snapshot() Counters {
	return Counters{
		Registered: l.registered.Load(), LoggedIn: l.loggedIn.Load(), Befriended: l.befriended.Load(),
		Connected: l.connected.Load(), Sealed: l.sealed.Load(), Sent: l.sent.Load(), Acked: l.acked.Load(),
		Delivered: l.delivered.Load(), Burned: l.burned.Load(), Errors: l.errors.Load(), Dropped: l.dropped.Load(),
	}
}

// StepResult is what one generator measured in one timed step; results of
// several generators merge into one.
type StepResult struct {
	Sent      int64 `json:"sent"`
	Acked     int64 `json:"acked"`
	Delivered int64 `json:"delivered"`
	Burned    int64 `json:"burned"`
	// SelfCopies counts sync copies delivered back to the sending device
	// (the protocol sends every device of the sender its sent messages).
	SelfCopies int64 `json:"self_copies"`
	// AckedNotDelivered must be 0: acknowledged sends whose message never
	// reached the recipient within the drain time.
	AckedNotDelivered int64 `json:"acked_not_delivered"`
	// DeliveredNotBurned counts delivered messages whose read got no answer.
	DeliveredNotBurned int64 `json:"delivered_not_burned"`
	// BurnFailed counts delivered messages whose read was answered with an
	// error (the message then stays until read again or MaxAge).
	BurnFailed int64 `json:"burn_failed"`
	// Unanswered counts sends that got neither an ack nor an error.
	Unanswered int64 `json:"unanswered"`
	// Duplicates counts msg frames for a message delivered already.
	Duplicates int64 `json:"duplicates"`
	// Errors counts error answers and failures by "op:code".
	Errors map[string]int64 `json:"errors"`
	// Times (unix nanoseconds) of the first send and the last of each kind.
	FirstSend   int64 `json:"first_send_ns"`
	LastSend    int64 `json:"last_send_ns"`
	LastAck     int64 `json:"last_ack_ns"`
	LastDeliver int64 `json:"last_deliver_ns"`
	LastBurn    int64 `json:"last_burn_ns"`
	// MaxLagMicros is how far the generator's schedule fell behind at worst.
	MaxLagMicros int64 `json:"max_lag_us"`
	// Latency histograms in microseconds, from the send frame's write:
	// to its ack, to the recipient's msg frame, to the read's ok.
	Ack     *hdrhistogram.Snapshot `json:"ack_hist"`
	Deliver *hdrhistogram.Snapshot `json:"deliver_hist"`
	Burn    *hdrhistogram.Snapshot `json:"burn_hist"`
}

// merge adds o into r.
func (r *StepResult) merge(o *StepResult) {
	r.Sent += o.Sent
	r.Acked += o.Acked
	r.Delivered += o.Delivered
	r.Burned += o.Burned
	r.SelfCopies += o.SelfCopies
	r.AckedNotDelivered += o.AckedNotDelivered
	r.DeliveredNotBurned += o.DeliveredNotBurned
	r.BurnFailed += o.BurnFailed
	r.Unanswered += o.Unanswered
	r.Duplicates += o.Duplicates
	if r.Errors == nil {
		r.Errors = map[string]int64{}
	}
	for k, v := range o.Errors {
		r.Errors[k] += v
	}
	if o.FirstSend != 0 && (r.FirstSend == 0 || o.FirstSend < r.FirstSend) {
		r.FirstSend = o.FirstSend
	}
	r.LastSend = max(r.LastSend, o.LastSend)
	r.LastAck = max(r.LastAck, o.LastAck)
	r.LastDeliver = max(r.LastDeliver, o.LastDeliver)
	r.LastBurn = max(r.LastBurn, o.LastBurn)
	r.MaxLagMicros = max(r.MaxLagMicros, o.MaxLagMicros)
	r.Ack = mergeSnap(r.Ack, o.Ack)
	r.Deliver = mergeSnap(r.Deliver, o.Deliver)
	r.Burn = mergeSnap(r.Burn, o.Burn)
}

func mergeSnap(a, b *hdrhistogram.Snapshot) *hdrhistogram.Snapshot {
	switch {
	case b == nil:
		return a
	case a == nil:
		return b
	}
	h := hdrhistogram.Import(a)
	h.Merge(hdrhistogram.Import(b))
	return h.Export()
}

// Latency is a histogram summary in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(s *hdrhistogram.Snapshot) Latency {
	if s == nil {
		return Latency{}
	}
	h := hdrhistogram.Import(s)
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max()),
	}
}

// rate returns n per second over the time from start to end (unix ns).
func rate(n, start, end int64) float64 {
	if n == 0 || end <= start {
		return 0
	}
	return float64(n) / (float64(end-start) / 1e9)
}

// cloneErrors copies an error-count map.
func cloneErrors(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return maps.Clone(m)
}
