package rtsp

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// controlsLookback is how far back the role reads camera-controls at
// start, so that a boost issued before a restart still applies. It equals
// the topic's retention.
const controlsLookback = 24 * time.Hour

// followControls applies SAMPLE_RATE_BOOST records from the camera-controls
// topic until ctx ends. It reads without a consumer group: every rtsp
// instance needs every control for the cameras it has.
func (c *Connector) followControls(ctx context.Context) {
	opts := append([]kgo.Opt{
		kgo.ConsumeTopics(c.tCtl),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-controlsLookback).UnixMilli())),
	}, c.kopts...)
	cl, err := kafka.NewClient(c.root.Kafka, opts...)
	if err != nil {
		c.log.Error("camera controls disabled: kafka client", "err", err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				c.log.Warn("fetching camera controls", "topic", topic, "partition", p, "err", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { c.applyControl(r.Value) })
	}
}

// applyControl applies one camera-controls record; invalid ones are
// counted and logged (the topic is written by wardstream itself).
func (c *Connector) applyControl(v []byte) {
	var ev pb.VideoEvent
	if err := codec.Unmarshal(v, &ev); err != nil {
		c.m.controls.WithLabelValues("invalid").Inc()
		c.log.Warn("invalid camera control record", "err", err)
		return
	}
	if ev.EventType != pb.VideoEventType_SAMPLE_RATE_BOOST {
		c.m.controls.WithLabelValues("ignored").Inc()
		return
	}
	cam, ok := c.cams[ev.CameraId]
	if !ok {
		c.m.controls.WithLabelValues("unknown_camera").Inc()
		return
	}
	if ev.SampleFps <= 0 || ev.SampleFps > 60 || ev.EndTimeMs <= 0 {
		c.m.controls.WithLabelValues("invalid").Inc()
		c.log.Warn("camera control without a valid rate or end time", "camera", ev.CameraId, "sample_fps", ev.SampleFps)
		return
	}
	now := time.Now().UnixMilli()
	cam.setBoost(float64(ev.SampleFps), ev.EndTimeMs, now)
	c.m.controls.WithLabelValues("applied").Inc()
	if ev.EndTimeMs > now {
		c.log.Info("camera sample rate boosted", "camera", ev.CameraId, "sample_fps", ev.SampleFps,
			"until", time.UnixMilli(ev.EndTimeMs).UTC().Format(time.RFC3339))
	}
}
