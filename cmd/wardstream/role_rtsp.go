package main

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/pipelines/correlation"
)

// newRTSPRole builds the rtsp role from connectors.rtsp: camera sessions,
// ONNX detection, video events to Kafka, and, when
// connectors.rtsp.correlation.enabled, the cross-system correlation group.
func newRTSPRole(e *env) (runtime.Role, error) {
	cfg, err := rtsp.Load(e.cfg)
	if err != nil {
		return nil, err
	}
	conn, err := rtsp.New(e.cfg, cfg, rtsp.WithLogger(e.log), rtsp.WithRegisterer(e.reg), rtsp.WithHealth(e.health))
	if err != nil {
		return nil, err
	}
	ccfg, err := correlation.Decode(&cfg.Correlation, "connectors.rtsp.correlation")
	if err != nil {
		return nil, err
	}
	if !ccfg.Enabled {
		return conn, nil
	}
	copts := []correlation.Option{correlation.WithLogger(e.log), correlation.WithRegisterer(e.reg)}
	if cfg.TopicPrefix != "" {
		ccfg.Group = cfg.TopicPrefix + ccfg.Group
		copts = append(copts, correlation.WithTopics(correlation.PrefixedTopics(ccfg, cfg.TopicPrefix)))
	}
	corr, err := correlation.NewRole(e.cfg, ccfg, copts...)
	if err != nil {
		return nil, err
	}
	return runtime.Func{RoleName: "rtsp", F: func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return conn.Run(gctx) })
		g.Go(func() error { return corr.Run(gctx) })
		return g.Wait()
	}}, nil
}
