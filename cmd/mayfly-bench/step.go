package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/envelope"
)

// RunSpec is one timed step: send the step's sealed messages evenly spread
// over Duration from Start, then wait at most Drain for the last answers.
type RunSpec struct {
	Step     int           `json:"step"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	Drain    time.Duration `json:"drain"`
}

// senders is how many goroutines write send frames, so one slow socket
// does not hold up the schedule.
const senders = 16

// stepHolder is the step frames are recorded into, if any.
type stepHolder struct {
	p       atomic.Pointer[stepState]
	closing atomic.Bool // the worker is closing: lost connections are expected
}

func (h *stepHolder) get() *stepState   { return h.p.Load() }
func (h *stepHolder) set(st *stepState) { h.p.Store(st) }

// stepState holds one step's pre-sealed frames and, per message, the times
// (unix ns, 0 = not yet) things happened to it.
type stepState struct {
	worker, step int
	frames       [][]byte // pre-encoded send frames
	from         []int32  // sender's index in the worker's users

	sendAt, ackAt, failAt, dlvAt, burnAt, readFailAt []atomic.Int64

	sent, acked, failed, delivered, burned, readFailed atomic.Int64
	dups, selfCopies                                   atomic.Int64

	errMu sync.Mutex
	errs  map[string]int64 // guarded by errMu
}

func (st *stepState) addError(key string) {
	st.errMu.Lock()
	st.errs[key]++
	st.errMu.Unlock()
}

// index returns message k of this step named by id, if id is one.
func (st *stepState) index(id string) (int, bool) {
	wk, step, k, ok := parseMsgID(id)
	if !ok || wk != st.worker || step != st.step || k >= len(st.frames) {
		return 0, false
	}
	return k, true
}

// resolved reports whether every sent message got its answers.
func (st *stepState) resolved() bool {
	return st.acked.Load()+st.failed.Load() >= st.sent.Load() &&
		st.delivered.Load() >= st.acked.Load() &&
		st.burned.Load()+st.readFailed.Load() >= st.delivered.Load()
}

// payload returns a message payload (docs/payload.md) of about size bytes.
func payload(size int) []byte {
	const frame = `{"text":""}`
	n := max(0, size-len(frame))
	return []byte(`{"text":"` + strings.Repeat("x", n) + `"}`)
}

// Seal prepares step's count messages before the step is timed: message k
// goes from connected user k mod n to its friend, each sealed (encrypted
// and signed, envelope v2) with a unique message id, on every CPU. The cost
// of sealing is thus kept out of the measurement. Each sender claims its
// friend's prekey bundle once per step (a real client claims one per
// message; the server's work per send is the same, the claims are not
// what the step measures) and seals all its messages of the step to it.
func (w *Worker) Seal(ctx context.Context, step, count int) error {
	n := w.connectedPrefix()
	if n < 2 {
		return fmt.Errorf("worker %d: no connected pair to send between", w.cfg.ID)
	}
	st := &stepState{
		worker: w.cfg.ID, step: step, errs: map[string]int64{},
		frames: make([][]byte, count), from: make([]int32, count),
		sendAt: make([]atomic.Int64, count), ackAt: make([]atomic.Int64, count),
		failAt: make([]atomic.Int64, count), dlvAt: make([]atomic.Int64, count),
		burnAt: make([]atomic.Int64, count), readFailAt: make([]atomic.Int64, count),
	}
	body := payload(w.cfg.PayloadSize)
	targets := make([][]envelope.Target, min(n, count))
	err := forEach(ctx, len(targets), w.cfg.SetupConcurrency, func(ctx context.Context, i int) error {
		var err error
		targets[i], err = w.api.claim(ctx, w.users[i])
		return err
	})
	if err != nil {
		return err
	}
	err = forEach(ctx, count, runtime.GOMAXPROCS(0), func(_ context.Context, k int) error {
		u := w.users[k%n]
		h := envelope.HeaderV2{From: u.id, FromDevice: u.keys.deviceID(), To: u.partner.id, MsgID: msgID(w.cfg.ID, step, k), SentAt: time.Now()}
		env, err := envelope.SealV2(h, u.keys.dk, targets[k%n], body)
		if err != nil {
			return err
		}
		f, err := json.Marshal(schema.SendFrame{Type: schema.FrameSend, ID: h.MsgID, To: u.partner.id, Envelope: env})
		if err != nil {
			return err
		}
		st.frames[k], st.from[k] = f, int32(k%n)
		w.live.sealed.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	w.sealed = st
	return nil
}

// connectedPrefix returns how many users from the first are connected,
// rounded down to whole pairs.
func (w *Worker) connectedPrefix() int {
	n := 0
	for n < len(w.users) && w.users[n].conn != nil {
		n++
	}
	return n &^ 1
}

// Run sends the sealed messages of spec.Step on schedule, waits for the
// answers (at most spec.Drain after the schedule ends) and returns what it
// measured. Messages still unanswered then count as such.
func (w *Worker) Run(ctx context.Context, spec RunSpec) (*StepResult, error) {
	st := w.sealed
	if st == nil || st.step != spec.Step {
		return nil, errNoStep
	}
	w.sealed = nil
	w.cur.set(st)
	lag := w.schedule(ctx, st, spec)
	deadline := time.Now().Add(spec.Drain)
	for !st.resolved() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	w.cur.set(nil)
	res := st.result()
	res.MaxLagMicros = lag.Microseconds()
	return res, ctx.Err()
}

// schedule writes message k at Start + k*Duration/count, on a pool of
// sender goroutines; it stops early when ctx ends or the schedule runs
// later than twice its duration. It returns the worst lag behind schedule.
func (w *Worker) schedule(ctx context.Context, st *stepState, spec RunSpec) time.Duration {
	ch := make(chan int, 1024)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range ch {
				w.sendOne(st, k)
			}
		}()
	}
	defer func() { close(ch); wg.Wait() }()
	count := len(st.frames)
	interval := float64(spec.Duration) / float64(max(count, 1))
	hard := spec.Start.Add(2*spec.Duration + 5*time.Second)
	var lag time.Duration
	for k := range count {
		due := spec.Start.Add(time.Duration(float64(k) * interval))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return lag
			}
		} else {
			lag = max(lag, -d)
		}
		if time.Now().After(hard) {
			return lag
		}
		select {
		case ch <- k:
		case <-ctx.Done():
			return lag
		}
	}
	return lag
}

// sendOne writes message k's send frame.
func (w *Worker) sendOne(st *stepState, k int) {
	c := w.users[st.from[k]].conn
	st.sendAt[k].Store(time.Now().UnixNano())
	st.sent.Add(1)
	w.live.sent.Add(1)
	if err := c.write(st.frames[k]); err != nil {
		st.failAt[k].Store(time.Now().UnixNano())
		st.failed.Add(1)
		w.recordError("send:write")
	}
}

// acked records the sent frame answering send id.
func (w *Worker) acked(id string, now int64) {
	st := w.cur.get()
	if st == nil {
		return
	}
	if k, ok := st.index(id); ok && st.ackAt[k].CompareAndSwap(0, now) {
		st.acked.Add(1)
		w.live.acked.Add(1)
	}
}

// delivered burns a received message at once and records its delivery.
func (w *Worker) delivered(c *wsConn, f *inFrame, now int64) {
	st := w.cur.get()
	if f.Self {
		if st != nil {
			st.selfCopies.Add(1)
		}
		return
	}
	if err := c.write(readFrame(f.MsgID, f.Seq)); err != nil {
		w.recordError("read:write")
	}
	if st == nil {
		return
	}
	k, ok := st.index(f.MsgID)
	if !ok {
		return
	}
	if !st.dlvAt[k].CompareAndSwap(0, now) {
		st.dups.Add(1)
		return
	}
	st.delivered.Add(1)
	w.live.delivered.Add(1)
}

// burned records the ok answering read id ("r" + message id).
func (w *Worker) burned(id string, now int64) {
	st := w.cur.get()
	if st == nil {
		return
	}
	if k, ok := st.index(strings.TrimPrefix(id, "r")); ok && st.burnAt[k].CompareAndSwap(0, now) {
		st.burned.Add(1)
		w.live.burned.Add(1)
	}
}

// errorFrame records an error answer by request kind and code.
func (w *Worker) errorFrame(f *inFrame, now int64) {
	code := "unknown"
	if f.Error != nil {
		code = string(f.Error.Code)
	}
	st := w.cur.get()
	switch {
	case f.ID == "":
		w.recordError("conn:" + code)
	case f.ID == "sync":
		w.recordError("sync:" + code)
	case strings.HasPrefix(f.ID, "r"):
		w.recordError("read:" + code)
		if st != nil {
			if k, ok := st.index(f.ID[1:]); ok && st.readFailAt[k].CompareAndSwap(0, now) {
				st.readFailed.Add(1)
			}
		}
	default:
		w.recordError("send:" + code)
		if st != nil {
			if k, ok := st.index(f.ID); ok && st.failAt[k].CompareAndSwap(0, now) {
				st.failed.Add(1)
			}
		}
	}
}

// result turns the per-message times into a StepResult.
func (st *stepState) result() *StepResult {
	ack, dlv, burn := newHist(), newHist(), newHist()
	r := &StepResult{Duplicates: st.dups.Load(), SelfCopies: st.selfCopies.Load()}
	st.errMu.Lock()
	r.Errors = cloneErrors(st.errs)
	st.errMu.Unlock()
	us := func(from, to int64) int64 { return max(1, (to-from)/1000) }
	for k := range st.frames {
		s := st.sendAt[k].Load()
		if s == 0 {
			continue
		}
		r.Sent++
		if r.FirstSend == 0 || s < r.FirstSend {
			r.FirstSend = s
		}
		r.LastSend = max(r.LastSend, s)
		a, d, b := st.ackAt[k].Load(), st.dlvAt[k].Load(), st.burnAt[k].Load()
		if a > 0 {
			r.Acked++
			r.LastAck = max(r.LastAck, a)
			ack.RecordValue(us(s, a))
		}
		if d > 0 {
			r.Delivered++
			r.LastDeliver = max(r.LastDeliver, d)
			dlv.RecordValue(us(s, d))
		}
		if b > 0 {
			r.Burned++
			r.LastBurn = max(r.LastBurn, b)
			burn.RecordValue(us(s, b))
		}
		switch {
		case a > 0 && d == 0:
			r.AckedNotDelivered++
		case a == 0 && st.failAt[k].Load() == 0:
			r.Unanswered++
		}
		switch {
		case b > 0:
		case st.readFailAt[k].Load() > 0:
			r.BurnFailed++
		case d > 0:
			r.DeliveredNotBurned++
		}
	}
	r.Ack, r.Deliver, r.Burn = ack.Export(), dlv.Export(), burn.Export()
	return r
}
