package mqtt_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/mqtt/devicesim"
	"github.com/wardstream/wardstream/schemas/topics"
)

// BenchmarkIntegrationThroughput measures MQTT -> Kafka on the real
// Mosquitto and Kafka: simulated devices publish, a connector in a child
// process (its own CPU accounting) consumes through the shared
// subscription, and the clock stops when the last record is in Kafka.
// Metrics: msgs/s and readings/s end to end, and the connector process's
// readings per CPU-second (per core). Run with -benchtime=1x; the message
// count is WARDSTREAM_MQTT_BENCH_MSGS (default 60000 publishes; batch100
// publishes a tenth as many batches of 100 readings), the number of
// simulated devices WARDSTREAM_MQTT_BENCH_DEVICES (default 20).
func BenchmarkIntegrationThroughput(b *testing.B) {
	n := 60000
	if v, err := strconv.Atoi(os.Getenv("WARDSTREAM_MQTT_BENCH_MSGS")); err == nil && v > 0 {
		n = v
	}
	for _, bc := range []struct {
		name  string
		qos   byte
		batch int
		pubs  int
	}{{"qos0", 0, 0, n}, {"qos1", 1, 0, n}, {"batch100_qos1", 1, 100, n / 10}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				throughputRun(b, bc.qos, bc.batch, bc.pubs)
			}
		})
	}
}

func throughputRun(b *testing.B, qos byte, batch, pubs int) {
	e := newITEnv(b, "mqttbench")
	child := e.startHelper(b, helperEnv+"_QOS="+strconv.Itoa(int(qos)), helperEnv+"_BENCH=1")
	time.Sleep(2 * time.Second)
	cpu0 := procCPU(child.Process.Pid)
	readings := int64(pubs)
	if batch > 0 {
		readings = int64(pubs) * int64(batch)
	}
	// WARDSTREAM_MQTT_BENCH_DEVICES: simulated devices (default 20; at
	// QoS 1 with one reading per publish 20 devices are the limit, more
	// drive the broker towards its own).
	devices := 20
	if v, err := strconv.Atoi(os.Getenv("WARDSTREAM_MQTT_BENCH_DEVICES")); err == nil && v > 0 {
		devices = v
	}
	var acked atomic.Int64
	var published atomic.Int64 // ns after start when the devices were done
	b.ResetTimer()
	start := time.Now()
	go func() {
		defer func() { published.Store(int64(time.Since(start))) }()
		_, err := devicesim.Run(context.Background(), devicesim.Options{URL: e.svc.MQTTURL, ClientPrefix: "b-" + e.id[len(e.id)-6:] + "-", TopicRoot: e.root,
			Devices: devices, Messages: pubs / devices, Batch: batch, QoS: qos, InFlight: 16}, &acked)
		if err != nil {
			b.Errorf("devices: %v", err)
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.svc.KafkaBrokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var got int64
	lastChange, last := time.Now(), int64(-1)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offs, err := adm.ListEndOffsets(ctx, e.prefix+topics.Vitals, e.prefix+topics.VitalsBatches)
		cancel()
		if err == nil {
			got = 0
			offs.Each(func(o kadm.ListedOffset) {
				// Every batch is valid and whole: a batch record holds
				// batch readings (batch_records, the default).
				if o.Topic == e.prefix+topics.VitalsBatches {
					got += o.Offset * int64(batch)
				} else {
					got += o.Offset
				}
			})
		}
		if got >= readings {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		// QoS 0 may lose messages at the broker; stop when it stalls.
		if time.Since(lastChange) > 10*time.Second {
			b.Logf("stalled at %d of %d readings", got, readings)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	el := time.Since(start)
	cpu := procCPU(child.Process.Pid) - cpu0
	b.ReportMetric(float64(got)/float64(maxInt(batch, 1))/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(got)/el.Seconds(), "readings/s")
	if cpu > 0 {
		b.ReportMetric(float64(got)/cpu.Seconds(), "readings/cpu-s")
	}
	b.Logf("%d readings in Kafka of %d published (%d publishes acked by the broker; devices done after %s) in %s; connector CPU %s",
		got, readings, acked.Load(), time.Duration(published.Load()), el, cpu)
	_ = child.Process.Kill()
	_ = child.Wait()
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// procCPU returns the user+system CPU time of pid (Linux /proc; 0 elsewhere).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
