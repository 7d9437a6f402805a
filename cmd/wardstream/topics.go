package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/topics"
)

func cmdTopics(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "manifest" {
		return cmdTopicsManifest(ctx, args[1:])
	}
	if len(args) == 0 || (args[0] != "apply" && args[0] != "list" && args[0] != "--help" && args[0] != "-h") {
		return fmt.Errorf("%w: want 'topics apply' or 'topics list'", errUsage)
	}
	sub := "apply"
	if args[0] == "apply" || args[0] == "list" {
		sub, args = args[0], args[1:]
	}
	fs := newFlags("topics " + sub)
	cfgPath := configFlag(fs)
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	if sub == "list" {
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, t := range topics.All() {
			ret := "forever"
			if t.Retention > 0 {
				ret = t.Retention.String()
			}
			fmt.Fprintf(w, "%s\tkey=%s\tpartitions=%d\tpolicy=%s\tretention=%s\tvalue=%s\n", t.Name, t.Key,
				kafka.PartitionsFor(e.cfg.Kafka, t), t.Policy, ret, t.Value.ProtoReflect().Descriptor().Name())
		}
		return w.Flush()
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl, err := kafka.NewClient(e.cfg.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := kafka.ApplyTopics(ctx, kadm.NewClient(cl), e.cfg.Kafka, e.log)
	for _, r := range res {
		status := r.Action
		if r.Err != nil {
			status = "failed: " + r.Err.Error()
		}
		fmt.Printf("%s\t%s\n", r.Topic, status)
	}
	return err
}
