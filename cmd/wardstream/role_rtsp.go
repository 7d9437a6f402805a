package main

import (
	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/internal/runtime"
)

// newRTSPRole builds the rtsp role from connectors.rtsp: camera sessions,
// ONNX detection, video events to Kafka.
func newRTSPRole(e *env) (runtime.Role, error) {
	cfg, err := rtsp.Load(e.cfg)
	if err != nil {
		return nil, err
	}
	return rtsp.New(e.cfg, cfg, rtsp.WithLogger(e.log), rtsp.WithRegisterer(e.reg), rtsp.WithHealth(e.health))
}
