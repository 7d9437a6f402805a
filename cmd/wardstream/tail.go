package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	"github.com/wardstream/wardstream/schemas/topics"
)

func cmdTail(ctx context.Context, args []string) error {
	// Allow the topic before or after the flags.
	var topic string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		topic, args = args[0], args[1:]
	}
	fs := newFlags("tail")
	cfgPath := configFlag(fs)
	fromBeginning := fs.Bool("from-beginning", false, "start at the oldest record instead of the newest")
	maxN := fs.Int("max", 0, "stop after N records (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: until interrupted)")
	withMeta := fs.Bool("with-meta", false, "wrap each record with its key, partition and offset")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if topic == "" && fs.NArg() > 0 {
		topic = fs.Arg(0)
	}
	if topic == "" {
		return fmt.Errorf("%w: want a TOPIC (see 'wardstream topics list')", errUsage)
	}
	tp, ok := topics.Lookup(topic)
	if !ok {
		return fmt.Errorf("%w: %q is not a catalog topic (see 'wardstream topics list')", errUsage, topic)
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	offset := kgo.NewOffset().AtEnd()
	if *fromBeginning {
		offset = kgo.NewOffset().AtStart()
	}
	cl, err := kafka.NewClient(e.cfg.Kafka, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(offset))
	if err != nil {
		return err
	}
	defer cl.Close()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	n := 0
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("fetching %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			m := tp.New()
			var line []byte
			// Every line is JSON: strings go through json.Marshal (Go's %q
			// escapes such as \x01 are not JSON).
			if err := codec.Unmarshal(r.Value, m); err != nil {
				line = fmt.Appendf(nil, `{"error":%s,"partition":%d,"offset":%d}`, jsonString(err.Error()), r.Partition, r.Offset)
			} else if line, err = codec.JSON(m); err != nil {
				line = fmt.Appendf(nil, `{"error":%s,"partition":%d,"offset":%d}`, jsonString(err.Error()), r.Partition, r.Offset)
			}
			if *withMeta {
				line = fmt.Appendf(nil, `{"key":%s,"partition":%d,"offset":%d,"timestamp":"%s","value":%s}`,
					jsonString(string(r.Key)), r.Partition, r.Offset, r.Timestamp.UTC().Format(time.RFC3339Nano), line)
			}
			out.Write(line)
			out.WriteByte('\n')
			n++
			if *maxN > 0 && n >= *maxN {
				return nil
			}
		}
		out.Flush()
	}
}

// jsonString is s as a JSON string (invalid UTF-8 becomes U+FFFD).
func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
