package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestSaramaSCRAM: README offers "SASL PLAIN/SCRAM with
// password_env", and franz-go clients get SCRAM, but SaramaConfig sets a
// SCRAM mechanism without the SCRAMClientGeneratorFunc sarama requires, so
// every goka group (processors, correlation, shadow) is refused by sarama.
func TestSaramaSCRAM(t *testing.T) {
	t.Setenv("WS_REVIEW_KAFKA_PW", "pw")
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		c := config.Default().Kafka
		c.SASL = config.SASL{Mechanism: mech, Username: "u", PasswordEnv: "WS_REVIEW_KAFKA_PW"}
		sc, err := kafka.SaramaConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("%s: sarama refuses the config: %v", mech, err)
		}
	}
}

// TestSASLPasswordEnvUnset: with SASL on and password_env naming an
// unset (or no) env var, Opts silently uses an empty password; the error
// surfaces only as an authentication failure against the broker.
func TestSASLPasswordEnvUnset(t *testing.T) {
	for _, env := range []string{"WS_REVIEW_UNSET_PW", ""} {
		c := config.Default().Kafka
		c.SASL = config.SASL{Mechanism: "PLAIN", Username: "u", PasswordEnv: env}
		if _, err := kafka.Opts(c); err == nil {
			t.Errorf("password_env %q (unset): no error, client would authenticate with an empty password", env)
		}
	}
}

// TestApplyTopicsPartitionErrors: ApplyTopics ignored the per-topic
// errors of CreatePartitions: a topic whose partitions could not be raised
// is reported "updated" with no error, and `topics apply` exits 0.
func TestApplyTopicsPartitionErrors(t *testing.T) {
	var names []string
	for _, tp := range topics.All() {
		names = append(names, tp.Name)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, names...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ControlKey(int16(kmsg.CreatePartitions), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.CreatePartitionsRequest)
		resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
		for _, tt := range req.Topics {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic = tt.Topic
			rt.ErrorCode = kerr.PolicyViolation.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	cfg := config.Default().Kafka
	cfg.Brokers = c.ListenAddrs()
	cfg.Partitions = 4
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := kafka.ApplyTopics(ctx, kadm.NewClient(cl), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "partitions") {
		t.Errorf("ApplyTopics error %v, want the refused partition increase", err)
	}
	if len(res) > 0 && res[0].Err == nil {
		t.Errorf("result %+v: partitions not raised, yet no error", res[0])
	}
}

// TestSaramaSCRAMAuthenticates: sarama (goka's client) authenticates with
// SCRAM through franz-go's SCRAM exchange against an in-process broker that
// requires it, and is refused with a wrong password.
func TestSaramaSCRAMAuthenticates(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "svc", "s3cret"), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		pass string
		ok   bool
	}{{"s3cret", true}, {"wrong", false}} {
		t.Setenv("WS_TEST_SCRAM_PW", tc.pass)
		cfg := config.Default().Kafka
		cfg.Brokers = c.ListenAddrs()
		cfg.SASL = config.SASL{Mechanism: "SCRAM-SHA-256", Username: "svc", PasswordEnv: "WS_TEST_SCRAM_PW"}
		sc, err := kafka.SaramaConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		sc.Net.DialTimeout, sc.Metadata.Retry.Max = 5*time.Second, 0
		cl, err := sarama.NewClient(cfg.Brokers, sc)
		if (err == nil) != tc.ok {
			t.Fatalf("password %q: sarama client error %v, want ok=%v", tc.pass, err, tc.ok)
		}
		if err == nil {
			if topics, err := cl.Topics(); err != nil || len(topics) == 0 {
				t.Errorf("topics after SCRAM: %v %v", topics, err)
			}
			cl.Close()
		}
	}
}

// Every catalog topic is keyed (goka tables, co-partitioned inputs,
// compacted latest-per-key topics): raising an existing topic's partition
// count remaps keys to other partitions, so goka groups refuse to start
// (inputs no longer co-partitioned with their tables) and a compacted
// topic keeps a key's old value in its old partition. `topics apply`
// raised them; it must refuse and leave the count as it is.
func TestApplyTopicsRefusesToRepartitionKeyedTopics(t *testing.T) {
	var names []string
	for _, tp := range topics.All() {
		names = append(names, tp.Name)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, names...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := config.Default().Kafka
	cfg.Brokers = c.ListenAddrs()
	cfg.Partitions = 4
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if _, err := kafka.ApplyTopics(ctx, adm, cfg, nil); err == nil {
		t.Error("ApplyTopics raised keyed topics from 2 to 4 partitions without an error")
	}
	td, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if got := len(td[n].Partitions); got != 2 {
			t.Errorf("%s has %d partitions after apply, want 2 (unchanged)", n, got)
		}
	}
}
