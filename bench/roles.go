package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// Proc is one child process the harness started (a `wardstream run
// --roles X` process) or a service it watches (Kafka, ClickHouse,
// Mosquitto from their pid files).
type Proc struct {
	// Name is the role name ("mqtt", "processors", ...) or the service.
	Name string
	// Pid is the process id.
	Pid int
	// Listen is the role's /metrics address ("" for services).
	Listen string

	cmd     *exec.Cmd
	log     *os.File
	logPath string
	done    chan struct{}
	err     error
	owned   bool

	mu        sync.Mutex
	first     procSample
	last      procSample
	peakRSS   int64
	peakCores float64
	haveFirst bool
}

type procSample struct {
	at    time.Time
	ticks int64
	rss   int64
}

// StartRole starts `bin run --roles role --config cfg --listen listen` with
// its output in logDir/role.log.
func StartRole(ctx context.Context, bin, role, cfg, listen, logDir string) (*Proc, error) {
	logPath := filepath.Join(logDir, "role-"+role+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log of role %s: %w", role, err)
	}
	// Not CommandContext: the harness stops roles with SIGTERM and a
	// deadline so that they drain, never with SIGKILL first.
	cmd := exec.Command(bin, "run", "--roles", role, "--config", cfg, "--listen", listen)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting role %s (%s): %w", role, bin, err)
	}
	p := &Proc{Name: role, Pid: cmd.Process.Pid, Listen: listen, cmd: cmd, log: lf, logPath: logPath, done: make(chan struct{}), owned: true}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	_ = ctx
	return p, nil
}

// WatchPid returns a Proc for an existing process (a service).
func WatchPid(name string, pid int) *Proc {
	return &Proc{Name: name, Pid: pid}
}

// Exited reports whether an owned child has exited, and its error.
func (p *Proc) Exited() (bool, error) {
	if !p.owned {
		return false, nil
	}
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// LogTail returns the last n lines of the role's log.
func (p *Proc) LogTail(n int) string {
	if p.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop sends SIGTERM and waits up to grace for a drain, then SIGKILLs the
// process group. It returns the exit error (nil for a clean drain).
func (p *Proc) Stop(grace time.Duration) error {
	if !p.owned {
		return nil
	}
	if ok, err := p.Exited(); ok {
		return err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("role %s did not drain within %s: killed", p.Name, grace)
	}
}

// Sample reads CPU time and RSS from /proc (including the process's
// threads; children of services are not summed).
func (p *Proc) Sample(now time.Time) {
	ticks, rss, err := readProc(p.Pid)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := procSample{at: now, ticks: ticks, rss: rss}
	if !p.haveFirst {
		p.first, p.haveFirst = s, true
	} else if dt := s.at.Sub(p.last.at).Seconds(); dt >= 0.5 {
		p.peakCores = max(p.peakCores, float64(s.ticks-p.last.ticks)/clockTicks/dt)
	}
	p.last = s
	if rss > p.peakRSS {
		p.peakRSS = rss
	}
}

// Usage is CPU and memory use of one process over the measured window.
type Usage struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	AvgCores   float64 `json:"avg_cores"`
	// PeakCores is the highest CPU use over one sampling interval.
	PeakCores   float64 `json:"peak_cores"`
	RSSMiB      float64 `json:"rss_mib"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	Pid         int     `json:"pid"`
	WindowSecs  float64 `json:"window_seconds"`
	ExitedEarly string  `json:"exited_early,omitempty"`
	// ReadingsPerCPUSecond is the run's sent readings per CPU second of
	// this process (0 when it used no measurable CPU).
	ReadingsPerCPUSecond float64 `json:"readings_per_cpu_second"`
}

// Usage returns the CPU and RSS used between the first and last Sample.
func (p *Proc) Usage() Usage {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := Usage{Pid: p.Pid}
	if !p.haveFirst {
		return u
	}
	u.CPUSeconds = float64(p.last.ticks-p.first.ticks) / clockTicks
	u.WindowSecs = p.last.at.Sub(p.first.at).Seconds()
	if u.WindowSecs > 0 {
		u.AvgCores = u.CPUSeconds / u.WindowSecs
	}
	u.PeakCores = p.peakCores
	u.RSSMiB = float64(p.last.rss) / (1 << 20)
	u.PeakRSSMiB = float64(p.peakRSS) / (1 << 20)
	return u
}

// CPUTicks returns the process's cumulative CPU ticks at the last sample.
func (p *Proc) CPUTicks() (int64, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last.ticks, p.last.at
}

// readProc returns utime+stime (clock ticks) and RSS (bytes) of pid.
func readProc(pid int) (int64, int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the parenthesised command name, which may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is state (field 3); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	rss, err := readRSS(pid)
	return ut + st, rss, err
}

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmRSS:") {
			fs := strings.Fields(line)
			if len(fs) >= 2 {
				kb, _ := strconv.ParseInt(fs[1], 10, 64)
				return kb << 10, nil
			}
		}
	}
	return 0, io.ErrUnexpectedEOF
}

// ServicePids returns the pids of the local services from the pid files
// `make services` writes (root/.local/run/*.pid); missing files are skipped.
func ServicePids(root string) map[string]int {
	out := map[string]int{}
	for _, name := range []string{"kafka", "clickhouse", "mosquitto"} {
		b, err := os.ReadFile(filepath.Join(root, ".local", "run", name+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				out[name] = pid
			}
		}
	}
	return out
}

// procAge returns how long ago pid started: its starttime (field 22 of
// /proc/PID/stat, clock ticks after boot) against /proc/uptime.
func procAge(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	return parseProcAge(stat, up)
}

// parseProcAge is procAge on the two files' contents.
func parseProcAge(stat, uptime []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state): starttime, field 22, is f[19].
	if len(f) < 20 {
		return 0, errors.New("short /proc stat")
	}
	start, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat starttime %q: %w", f[19], err)
	}
	u := strings.Fields(string(uptime))
	if len(u) == 0 {
		return 0, errors.New("empty /proc/uptime")
	}
	secs, err := strconv.ParseFloat(u[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/uptime %q: %w", u[0], err)
	}
	age := time.Duration(secs*float64(time.Second)) - time.Duration(start)*time.Second/clockTicks
	return max(age, 0), nil
}
