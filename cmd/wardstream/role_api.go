package main

import (
	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/internal/runtime"
)

// newAPIRole builds the api role: the HTTP API and dashboard on the
// topology's Kafka and ClickHouse (see connectors/api).
func newAPIRole(e *env) (runtime.Role, error) {
	return api.FromRoot(e.cfg, api.WithLogger(e.log), api.WithRegisterer(e.reg), api.WithHealth(e.health))
}
