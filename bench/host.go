package bench

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// HostResult is what the whole machine did during the run, from
// /proc/stat and /proc/loadavg (Linux; zero elsewhere). On a shared
// virtual machine, steal is CPU time the hypervisor gave to other tenants
// while this machine wanted it: runs with a visible steal share measure a
// slower machine than a quiet one, whatever the code does. Busy is every
// non-idle CPU second on the machine, ours and anything else's.
type HostResult struct {
	Cores        int     `json:"cores"`
	WallSeconds  float64 `json:"wall_seconds"`
	BusySeconds  float64 `json:"busy_cpu_seconds"`
	IdleSeconds  float64 `json:"idle_cpu_seconds"`
	StealSeconds float64 `json:"steal_cpu_seconds"`
	// StealShare is steal / (cores x wall).
	StealShare float64 `json:"steal_share"`
	Load1Start float64 `json:"loadavg_1m_start"`
	Load1End   float64 `json:"loadavg_1m_end"`
	// GoMaxProcs is the harness's GOMAXPROCS; the roles it starts take
	// the same topology's process.gomaxprocs (or the same environment).
	GoMaxProcs int `json:"gomaxprocs"`
	// GODEBUG is the harness's GODEBUG environment (the roles it starts
	// inherit it): schedtrace=2147483647 there means process.keep_sysmon_awake.
	GODEBUG string `json:"godebug,omitempty"`
}

// cpuTimes is the machine-wide "cpu" line of /proc/stat in seconds.
type cpuTimes struct{ busy, idle, steal float64 }

// userHZ is the unit of /proc/stat (USER_HZ, 100 on Linux).
const userHZ = 100

func readCPUTimes() (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	return parseCPUTimes(string(b))
}

// parseCPUTimes reads the first line of /proc/stat: user nice system idle
// iowait irq softirq steal [guest guest_nice] (guest time is already in
// user and nice).
func parseCPUTimes(stat string) (cpuTimes, bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, false
	}
	var v [8]uint64 // ticks
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return cpuTimes{}, false
		}
		v[i] = n
	}
	sec := func(ticks uint64) float64 { return float64(ticks) / userHZ }
	return cpuTimes{busy: sec(v[0] + v[1] + v[2] + v[5] + v[6]), idle: sec(v[3] + v[4]), steal: sec(v[7])}, true
}

func loadavg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	l, _ := strconv.ParseFloat(f[0], 64)
	return l
}

// hostWatch measures the machine from start to stop.
type hostWatch struct {
	at    time.Time
	t0    cpuTimes
	ok    bool
	load0 float64
}

func startHostWatch() hostWatch {
	t, ok := readCPUTimes()
	return hostWatch{at: time.Now(), t0: t, ok: ok, load0: loadavg1()}
}

func (w hostWatch) stop() *HostResult {
	t1, ok := readCPUTimes()
	if !w.ok || !ok {
		return nil
	}
	r := &HostResult{Cores: runtime.NumCPU(), WallSeconds: time.Since(w.at).Seconds(), BusySeconds: t1.busy - w.t0.busy,
		IdleSeconds: t1.idle - w.t0.idle, StealSeconds: t1.steal - w.t0.steal, Load1Start: w.load0, Load1End: loadavg1(),
		GoMaxProcs: runtime.GOMAXPROCS(0), GODEBUG: os.Getenv("GODEBUG")}
	if r.WallSeconds > 0 && r.Cores > 0 {
		r.StealShare = r.StealSeconds / (float64(r.Cores) * r.WallSeconds)
	}
	for _, p := range []*float64{&r.WallSeconds, &r.BusySeconds, &r.IdleSeconds, &r.StealSeconds} {
		*p = math.Round(*p*100) / 100 // ticks are 10 ms
	}
	r.StealShare = math.Round(r.StealShare*1e4) / 1e4
	return r
}
