package main

import (
	"github.com/wardstream/wardstream/internal/runtime"
	chsink "github.com/wardstream/wardstream/sinks/clickhouse"
)

// newSinkRole builds the ClickHouse sink role from sinks.clickhouse.
func newSinkRole(e *env) (runtime.Role, error) {
	cfg, err := chsink.Load(e.cfg)
	if err != nil {
		return nil, err
	}
	return chsink.New(e.cfg, cfg, chsink.WithLogger(e.log), chsink.WithRegisterer(e.reg), chsink.WithHealth(e.health))
}
