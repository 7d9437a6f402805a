package rtsp

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// restoreTimeout bounds the replay at start; a replay cut short keeps
// what it read (the role starts either way).
const restoreTimeout = 30 * time.Second

// restoreEvents rebuilds each camera's event state from the frame
// detections this role produced in the last StateLookback (its detections
// topic, keyed by camera): every record of one of its cameras goes through
// the camera's engine in order, outputs discarded, then the engine is told
// it resumes after an unwatched gap. Events are derived from frames alone,
// so the replay gives the engine exactly the episodes (and event ids) it
// had: a person who stood in a restricted area across a restart is not a
// new UNAUTHORIZED_ACCESS. It runs before the sessions and workers start,
// so no engine is in use. Errors are the caller's to log: the role then
// starts with fresh state, as it did before this existed.
// prod is the role's producer client (used here for metadata only).
func (c *Connector) restoreEvents(ctx context.Context, prod *kgo.Client, cams map[string]*camera) (frames int, err error) {
	lb := c.cfg.StateLookback.D()
	if lb <= 0 || len(cams) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	adm := kadm.NewClient(prod) // not closed: that would close prod
	starts, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(-lb).UnixMilli(), c.tDet)
	if err != nil {
		return 0, fmt.Errorf("restoring event state: listing offsets of %s after %v ago: %w", c.tDet, lb, err)
	}
	ends, err := adm.ListEndOffsets(ctx, c.tDet)
	if err != nil {
		return 0, fmt.Errorf("restoring event state: listing end offsets of %s: %w", c.tDet, err)
	}
	if err := starts.Error(); err != nil {
		return 0, fmt.Errorf("restoring event state: offsets of %s: %w", c.tDet, err)
	}
	from := map[int32]kgo.Offset{}
	until := map[int32]int64{} // partition -> end offset still to reach
	starts.Each(func(o kadm.ListedOffset) {
		end, ok := ends.Lookup(c.tDet, o.Partition)
		if !ok || end.Err != nil || o.Offset < 0 || o.Offset >= end.Offset {
			return
		}
		from[o.Partition] = kgo.NewOffset().At(o.Offset)
		until[o.Partition] = end.Offset
	})
	if len(from) == 0 {
		return 0, nil
	}
	cl, err := kafka.NewClient(c.root.Kafka, append(append([]kgo.Opt(nil), c.kopts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.tDet: from}))...)
	if err != nil {
		return 0, fmt.Errorf("restoring event state: kafka client: %w", err)
	}
	defer cl.Close()
	replayed := map[*camera]bool{}
	for len(until) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			err = fmt.Errorf("restoring event state: %d partition(s) of %s not read to their end within %v: %w", len(until), c.tDet, restoreTimeout, ctx.Err())
			break
		}
		fs.EachError(func(topic string, p int32, ferr error) {
			c.log.Warn("restoring event state: fetch error", "topic", topic, "partition", p, "err", ferr)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := until[r.Partition]; ok && r.Offset >= end-1 {
				delete(until, r.Partition)
			}
			cam, ok := cams[string(r.Key)]
			if !ok {
				c.m.restored.WithLabelValues("other_camera").Inc()
				return
			}
			var fd pb.FrameDetections
			if uerr := codec.Unmarshal(r.Value, &fd); uerr != nil || fd.GetCameraId() != cam.cfg.ID || fd.GetMeta().GetTenant() != cam.cfg.Tenant {
				c.m.restored.WithLabelValues("invalid").Inc()
				return
			}
			cam.eng.Observe(&fd)
			replayed[cam] = true
			frames++
			c.m.restored.WithLabelValues("replayed").Inc()
		})
	}
	for cam := range replayed {
		cam.eng.Resume(c.cfg.StateMaxGap.D())
	}
	return frames, err
}
