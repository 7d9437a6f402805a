package main

import (
	"github.com/wardstream/wardstream/connectors/mqtt"
	"github.com/wardstream/wardstream/internal/runtime"
)

// newMQTTRole builds the mqtt role: devices over MQTT into Kafka, commands
// and shadow deltas back (see connectors/mqtt).
func newMQTTRole(e *env) (runtime.Role, error) {
	return mqtt.FromRoot(e.cfg, mqtt.WithLogger(e.log), mqtt.WithRegisterer(e.reg), mqtt.WithHealth(e.health))
}
