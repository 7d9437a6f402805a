package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wardstream/wardstream/internal/config"
)

func TestSysmonEnv(t *testing.T) {
	on := config.Process{KeepSysmonAwake: true}
	cases := []struct {
		name    string
		p       config.Process
		environ []string
		want    []string
		wantOK  bool
	}{
		{"off keeps Go's default", config.Process{}, []string{"PATH=/bin"}, nil, false},
		{"adds GODEBUG", on, []string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + sysmonAwake}, true},
		{"appends to GODEBUG", on, []string{"GODEBUG=gctrace=1", "HOME=/root"}, []string{"GODEBUG=gctrace=1," + sysmonAwake, "HOME=/root"}, true},
		{"fills an empty GODEBUG", on, []string{"GODEBUG="}, []string{"GODEBUG=" + sysmonAwake}, true},
		{"re-executed already", on, []string{"GODEBUG=gctrace=1," + sysmonAwake}, nil, false},
		{"user's schedtrace wins", on, []string{"GODEBUG=schedtrace=1000"}, nil, false},
		{"a name ending in schedtrace is not it", on, []string{"GODEBUG=xschedtrace=1"}, []string{"GODEBUG=xschedtrace=1," + sysmonAwake}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := sysmonEnv(tc.p, tc.environ)
			if ok != tc.wantOK || !slices.Equal(got, tc.want) {
				t.Fatalf("sysmonEnv = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestSysmonReexec builds the binary and runs a command under a topology
// that keeps sysmon awake: the process re-executes itself once, and the
// second run sees GODEBUG with the setting (and the user's own kept).
func TestSysmonReexec(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "wardstream")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, topology, godebug, want string
	}{
		{"awake", "process:\n  keep_sysmon_awake: true\n", "gctrace=0", `godebug="gctrace=0,` + sysmonAwake + `"`},
		{"user's schedtrace wins", "process:\n  keep_sysmon_awake: true\n", "schedtrace=3600000", `godebug="schedtrace=3600000"`},
		{"off", "process:\n  keep_sysmon_awake: false\n", "gctrace=0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "topology.yaml")
			if err := os.WriteFile(cfg, []byte(tc.topology+"telemetry:\n  log_level: debug\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "topics", "list", "--config", cfg)
			cmd.Env = append(os.Environ(), "GODEBUG="+tc.godebug)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("wardstream topics list: %v\n%s", err, out)
			}
			got := strings.Count(string(out), "sysmon kept awake")
			switch {
			case tc.want == "" && got != 0:
				t.Fatalf("sysmon kept awake with the setting off:\n%s", out)
			case tc.want != "" && (got != 1 || !strings.Contains(string(out), tc.want)):
				t.Fatalf("want one %q line with %s, got %d:\n%s", "sysmon kept awake", tc.want, got, out)
			}
		})
	}
}
