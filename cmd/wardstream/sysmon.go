package main

import (
	"strings"

	"github.com/wardstream/wardstream/internal/config"
)

// sysmonAwake is the GODEBUG setting that keeps sysmon out of its deep
// sleep (see config.Process.KeepSysmonAwake): a scheduler trace period of
// the largest value the runtime accepts, 2^31-1 ms (24.8 days).
const sysmonAwake = "schedtrace=2147483647"

// sysmonEnv returns the environment to re-execute this process with so
// that sysmon stays awake, and whether to: only when the topology asks for
// it and GODEBUG does not already name schedtrace (the user's setting, or
// this process after its re-execution). environ is os.Environ().
func sysmonEnv(p config.Process, environ []string) ([]string, bool) {
	if !p.KeepSysmonAwake {
		return nil, false
	}
	out := make([]string, 0, len(environ)+1)
	found := false
	for _, kv := range environ {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			out = append(out, kv)
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if strings.HasPrefix(strings.TrimSpace(f), "schedtrace=") {
				return nil, false
			}
		}
		found = true
		if v == "" {
			out = append(out, "GODEBUG="+sysmonAwake)
		} else {
			out = append(out, "GODEBUG="+v+","+sysmonAwake)
		}
	}
	if !found {
		out = append(out, "GODEBUG="+sysmonAwake)
	}
	return out, true
}
