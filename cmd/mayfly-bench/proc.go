package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux this runs on.
const clockTicks = 100

// procRSS returns the resident set size of pid in bytes (VmRSS), or 0 when
// the process is gone.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// procStat returns the parent pid and the CPU time (user + system) in
// seconds of pid, from /proc/<pid>/stat.
func procStat(pid int) (ppid int, cpu float64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) may hold spaces; fields restart after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, float64(ut+st) / clockTicks, true
}

// procCPU returns the CPU seconds pid has used, or 0 when it is gone.
func procCPU(pid int) float64 {
	_, cpu, _ := procStat(pid)
	return cpu
}

// descendantsCPU returns the CPU seconds used by the live descendants of
// pid (not pid itself): for mayflyd, its private Postgres.
func descendantsCPU(pid int) float64 {
	children := map[int][]int{}
	cpu := map[int]float64{}
	ents, _ := filepath.Glob("/proc/[0-9]*")
	for _, e := range ents {
		p, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		if pp, c, ok := procStat(p); ok {
			children[pp] = append(children[pp], p)
			cpu[p] = c
		}
	}
	var sum float64
	stack := append([]int(nil), children[pid]...)
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		sum += cpu[p]
		stack = append(stack, children[p]...)
	}
	return sum
}

// machine describes the host a run was measured on.
type machine struct {
	CPUs      int     `json:"cpus"`
	MemoryMB  int64   `json:"memory_mb"`
	GoVersion string  `json:"go_version"`
	Kernel    string  `json:"kernel"`
	CPUModel  string  `json:"cpu_model"`
	LoadAvg   float64 `json:"load_avg_1m_at_start"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemoryMB = kb >> 10
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadAvg returns the one-minute load average, or 0.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
