package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// generator is what the driver needs of a load generator: a Worker in this
// process, or one in a child process (remoteWorker) when one process could
// not hold all the sockets. Calls are made one at a time.
type generator interface {
	Setup(ctx context.Context) error
	Connect(ctx context.Context, n int) error
	Seal(ctx context.Context, step, count int) error
	Run(ctx context.Context, spec RunSpec) (*StepResult, error)
	Counters() Counters
	Close() error
}

// Worker protocol: the driver writes one request per line to the child's
// stdin; the child answers each with a "done" reply on stdout, and sends
// "progress" replies twice a second in between.
type request struct {
	Op     string        `json:"op"` // setup, connect, seal, run, quit
	Config *WorkerConfig `json:"config,omitempty"`
	N      int           `json:"n,omitempty"`
	Step   int           `json:"step,omitempty"`
	Count  int           `json:"count,omitempty"`
	Spec   *RunSpec      `json:"spec,omitempty"`
}

type reply struct {
	Kind     string      `json:"kind"` // progress or done
	Counters Counters    `json:"counters"`
	Result   *StepResult `json:"result,omitempty"`
	Err      string      `json:"err,omitempty"`
}

// workerMain runs a child worker: it reads requests from r and answers on
// out until "quit" or end of input.
func workerMain(r io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	var wmu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(rep reply) {
		wmu.Lock()
		defer wmu.Unlock()
		enc.Encode(rep)
	}
	var first request
	if err := dec.Decode(&first); err != nil || first.Op != "setup" || first.Config == nil {
		return fmt.Errorf("worker: first request must be setup: %v", err)
	}
	w, err := NewWorker(*first.Config)
	if err != nil {
		send(reply{Kind: "done", Err: err.Error()})
		return err
	}
	defer func() {
		w.cur.closing.Store(true)
		w.Close()
	}()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				send(reply{Kind: "progress", Counters: w.Counters()})
			case <-stop:
				return
			}
		}
	}()
	ctx := context.Background()
	req := first
	for {
		rep := reply{Kind: "done"}
		if req.Op == "quit" {
			return nil
		}
		err := serveRequest(ctx, w, req, &rep)
		if err != nil {
			rep.Err = err.Error()
		}
		rep.Counters = w.Counters()
		send(rep)
		req = request{}
		if err := dec.Decode(&req); err != nil {
			return nil // the driver went away
		}
	}
}

func serveRequest(ctx context.Context, w *Worker, req request, rep *reply) error {
	switch req.Op {
	case "setup":
		return w.Setup(ctx)
	case "connect":
		return w.Connect(ctx, req.N)
	case "seal":
		return w.Seal(ctx, req.Step, req.Count)
	case "run":
		if req.Spec == nil {
			return errors.New("run without spec")
		}
		res, err := w.Run(ctx, *req.Spec)
		rep.Result = res
		return err
	}
	return fmt.Errorf("unknown op %q", req.Op)
}

// remoteWorker drives a Worker in a child process (this binary
// re-executed with the hidden "worker" command) over its stdin and stdout.
type remoteWorker struct {
	cfg  WorkerConfig
	pid  int
	kill func()
	in   io.WriteCloser
	done chan reply // "done" replies
	dead chan struct{}

	mu       sync.Mutex
	counters Counters // from the last reply; guarded by mu
}

// startRemote starts a child worker.
func startRemote(cfg WorkerConfig) (*remoteWorker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(self, "worker")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %d: %w", cfg.ID, err)
	}
	kill := func() { cmd.Process.Kill() }
	return newRemote(cfg, cmd.Process.Pid, in, out, kill, func() { cmd.Wait() }), nil
}

// newRemote talks to a worker over in and out; wait is called once out
// has ended, kill stops the worker at once.
func newRemote(cfg WorkerConfig, pid int, in io.WriteCloser, out io.Reader, kill, wait func()) *remoteWorker {
	r := &remoteWorker{cfg: cfg, pid: pid, kill: kill, in: in, done: make(chan reply, 1), dead: make(chan struct{})}
	go r.readReplies(out, wait)
	return r
}

func (r *remoteWorker) readReplies(out io.Reader, wait func()) {
	defer close(r.dead)
	dec := json.NewDecoder(bufio.NewReader(out))
	for {
		var rep reply
		if err := dec.Decode(&rep); err != nil {
			wait()
			return
		}
		r.mu.Lock()
		r.counters = rep.Counters
		r.mu.Unlock()
		if rep.Kind == "done" {
			r.done <- rep
		}
	}
}

// call sends req and waits for its done reply.
func (r *remoteWorker) call(ctx context.Context, req request) (reply, error) {
	if err := json.NewEncoder(r.in).Encode(req); err != nil {
		return reply{}, fmt.Errorf("worker %d: send %s: %w", r.cfg.ID, req.Op, err)
	}
	select {
	case rep := <-r.done:
		if rep.Err != "" {
			return rep, fmt.Errorf("worker %d: %s: %s", r.cfg.ID, req.Op, rep.Err)
		}
		return rep, nil
	case <-r.dead:
		return reply{}, fmt.Errorf("worker %d exited during %s", r.cfg.ID, req.Op)
	case <-ctx.Done():
		r.kill()
		return reply{}, ctx.Err()
	}
}

// Pid returns the child's process id, for its CPU time.
func (r *remoteWorker) Pid() int { return r.pid }

func (r *remoteWorker) Setup(ctx context.Context) error {
	_, err := r.call(ctx, request{Op: "setup", Config: &r.cfg})
	return err
}

func (r *remoteWorker) Connect(ctx context.Context, n int) error {
	_, err := r.call(ctx, request{Op: "connect", N: n})
	return err
}

func (r *remoteWorker) Seal(ctx context.Context, step, count int) error {
	_, err := r.call(ctx, request{Op: "seal", Step: step, Count: count})
	return err
}

func (r *remoteWorker) Run(ctx context.Context, spec RunSpec) (*StepResult, error) {
	rep, err := r.call(ctx, request{Op: "run", Spec: &spec})
	return rep.Result, err
}

func (r *remoteWorker) Counters() Counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counters
}

// Close asks the child to quit and waits for it (killing it after 30s).
func (r *remoteWorker) Close() error {
	json.NewEncoder(r.in).Encode(request{Op: "quit"})
	r.in.Close()
	select {
	case <-r.dead:
	case <-time.After(30 * time.Second):
		r.kill()
		<-r.dead
	}
	return nil
}
