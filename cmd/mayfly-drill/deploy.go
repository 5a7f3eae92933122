package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// deployment is one run of deploy/dr/sites.sh plus a mayflyd per city.
type deployment struct {
	script, dir, mayflyd string
	partitions           int
	base                 int
	env                  map[string][]string // site -> MAYFLY_* environment
	procs                map[string]*proc
}

// proc is a mayflyd the drill started; done closes when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var siteNames = []string{"a", "b", "c"}

// startDeployment runs sites.sh start in dir with the port base, and loads
// each city's environment.
func startDeployment(script, dir, mayflyd string, base, partitions int, single bool) (*deployment, error) {
	d := &deployment{script: script, dir: dir, mayflyd: mayflyd, base: base, partitions: partitions,
		env: map[string][]string{}, procs: map[string]*proc{}}
	extra := []string{"DR_PORT_BASE=" + strconv.Itoa(base)}
	if single {
		extra = append(extra, "DR_SINGLE_SITE=1")
	}
	if err := d.run(extra, "start", dir); err != nil {
		return nil, err
	}
	for _, s := range siteNames {
		env, err := readEnv(filepath.Join(dir, "env-"+s))
		if err != nil {
			return nil, err
		}
		d.env[s] = env
	}
	return d, nil
}

// run runs the deploy script with args, its output to ours.
func (d *deployment) run(extraEnv []string, args ...string) error {
	cmd := exec.Command(d.script, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", d.script, strings.Join(args, " "), err)
	}
	return nil
}

// readEnv reads KEY='value' lines.
func readEnv(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read env: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			out = append(out, k+"="+strings.Trim(v, "'"))
		}
	}
	return out, sc.Err()
}

// value returns one variable of site's environment.
func (d *deployment) value(site, key string) string {
	for _, kv := range d.env[site] {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func (d *deployment) httpAddr(site string) string {
	return "127.0.0.1:" + strconv.Itoa(d.base+40+index(site))
}

func index(site string) int {
	for i, s := range siteNames {
		if s == site {
			return i
		}
	}
	panic("unknown site " + site)
}

// startMayflyd starts site's mayflyd and waits until /readyz answers.
func (d *deployment) startMayflyd(ctx context.Context, site string) error {
	logf, err := os.OpenFile(filepath.Join(d.dir, "mayflyd-"+site+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.mayflyd, "--data", filepath.Join(d.dir, "mayflyd-"+site), "--http", d.httpAddr(site),
		"--nats-ws-listen", "off", "--anon-rate", "100000", "--anon-burst", "100000", "--send-rate", "-1",
		"--mailbox-partitions", strconv.Itoa(d.partitions))
	cmd.Env = append(os.Environ(), d.env[site]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mayflyd %s: %w", site, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	d.procs[site] = p
	go func() { cmd.Wait(); close(p.done) }() //nolint:errcheck // the drill kills it on purpose
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ready("http://" + d.httpAddr(site) + "/readyz") {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("mayflyd %s not ready after 60s; see %s", site, logf.Name())
}

func ready(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// killCity SIGKILLs site's mayflyd, NATS server and Postgres (the
// postmaster and its backends) at the same moment, and returns that
// moment; then it runs the script's kill for anything left.
func (d *deployment) killCity(site string) (time.Time, error) {
	var pids []int
	if pid, err := pidFile(filepath.Join(d.dir, "nats-"+site+".pid")); err == nil {
		pids = append(pids, pid)
	}
	if pm, err := pidFile(filepath.Join(d.dir, "pg-"+site, "data", "postmaster.pid")); err == nil {
		pids = append(append(pids, pm), children(pm)...)
	}
	p := d.procs[site]
	at := time.Now()
	if p != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // gone already is fine
	}
	if p != nil {
		<-p.done
		d.procs[site] = nil
	}
	return at, d.run(nil, "kill", d.dir, site)
}

// pidFile reads the pid on the first line of path.
func pidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// children lists the processes whose parent is pid (from /proc).
func children(pid int) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(strings.Fields(string(b))[0]); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// stop stops every mayflyd (SIGTERM) and the deployment.
func (d *deployment) stop() {
	for s, p := range d.procs {
		if p != nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
			d.procs[s] = nil
		}
	}
	d.run(nil, "stop", d.dir) //nolint:errcheck // best effort at the end
}

// countLog counts the lines of every mayflyd log that contain s.
func (d *deployment) countLog(s string) int {
	n := 0
	for _, site := range siteNames {
		f, err := os.Open(filepath.Join(d.dir, "mayflyd-"+site+".log"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			if strings.Contains(sc.Text(), s) {
				n++
			}
		}
		f.Close()
	}
	return n
}
