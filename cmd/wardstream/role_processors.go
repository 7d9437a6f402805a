package main

import (
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/pipelines/processors"
)

// newProcessorsRole builds the processors role (goka groups adherence,
// anomaly, alerts) from the pipelines section.
func newProcessorsRole(e *env) (runtime.Role, error) {
	cfg, err := processors.Load(e.cfg)
	if err != nil {
		return nil, err
	}
	return processors.New(e.cfg, cfg, processors.WithLogger(e.log), processors.WithRegisterer(e.reg), processors.WithHealth(e.health))
}
