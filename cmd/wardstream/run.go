package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/wardstream/wardstream/internal/runtime"
)

// roleNames are the roles 'run --roles' accepts, in start order.
var roleNames = []string{"mqtt", "rtsp", "processors", "sink", "api"}

// newRole builds the role called name from the topology. Each role's
// builder lives in role_<name>.go.
func newRole(e *env, name string) (runtime.Role, error) {
	switch name {
	case "mqtt":
		return newMQTTRole(e)
	case "rtsp":
		return newRTSPRole(e)
	case "processors":
		return newProcessorsRole(e)
	case "sink":
		return newSinkRole(e)
	case "api":
		return newAPIRole(e)
	}
	return nil, fmt.Errorf("%w: unknown role %q (want some of %s)", errUsage, name, strings.Join(roleNames, ","))
}

func cmdRun(ctx context.Context, args []string) error {
	fs := newFlags("run")
	cfgPath := configFlag(fs)
	rolesFlag := fs.String("roles", strings.Join(roleNames, ","), "comma-separated roles to run: "+strings.Join(roleNames, ","))
	listen := fs.String("listen", "", "address for /metrics, /healthz, /readyz (default: telemetry.listen from the topology)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	var roles []runtime.Role
	seen := map[string]bool{}
	for _, name := range strings.Split(*rolesFlag, ",") {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		r, err := newRole(e, name)
		if err != nil {
			return fmt.Errorf("role %s: %w", name, err)
		}
		roles = append(roles, r)
	}
	if len(roles) == 0 {
		return fmt.Errorf("%w: --roles names no role", errUsage)
	}
	addr := e.cfg.Telemetry.Listen
	if *listen != "" {
		addr = *listen
	}
	g := &runtime.Group{Logger: e.log, Registry: e.reg, Health: e.health, Listen: addr, Pprof: e.cfg.Telemetry.Pprof, DrainTimeout: e.cfg.DrainTimeout.D()}
	e.log.Info("wardstream starting", "version", version, "roles", *rolesFlag, "config", e.cfg.Path(),
		"kafka", strings.Join(e.cfg.Kafka.Brokers, ","), "clickhouse", strings.Join(e.cfg.ClickHouse.Addr, ","), "mqtt", redactURL(e.cfg.MQTT.URL))
	return g.Run(ctx, roles...)
}

// redactURL hides a password in u ("tcp://user:xxxxx@host"); a URL that
// does not parse is not printed at all.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}
