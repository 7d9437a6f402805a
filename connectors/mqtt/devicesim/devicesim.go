// Package devicesim publishes simulated device traffic to an MQTT broker:
// N devices, each on its own MQTT v5 connection, publishing seed-shaped
// JSON (vitals, or batches of vitals) with unique message ids. The bench
// harness and the connector's tests and benchmarks use it to drive the mqtt
// role; it checks nothing about what arrives in Kafka.
package devicesim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/sync/errgroup"
)

// Options describe a run.
type Options struct {
	// URL is the broker, tcp://host:port or mqtt://host:port.
	URL string
	// ClientPrefix prefixes the devices' client ids.
	ClientPrefix string
	// TopicRoot is prepended to every topic ("" for the seeds' topics).
	TopicRoot string
	// Tenant and DeviceType fill medical/{tenant}/{deviceType}/{deviceId}/vitals.
	Tenant, DeviceType string
	// Devices is the number of devices (connections).
	Devices int
	// Messages is the number of publishes per device.
	Messages int
	// Batch > 0 publishes batches of this many readings on
	// medical/devices/batch/telemetry instead of single readings.
	Batch int
	// QoS is 0 or 1.
	QoS byte
	// InFlight is the number of concurrent publishes per device (default 8).
	InFlight int
	// RunID makes message ids unique across runs (default: the start time).
	RunID string
}

// Stats is what a run did.
type Stats struct {
	Publishes int64
	Readings  int64
	Elapsed   time.Duration
}

// MessageID returns the messageId of publish i (batch reading j, or -1)
// of device d in run runID.
func MessageID(runID string, d, i, j int) string {
	if j < 0 {
		return runID + "-d" + strconv.Itoa(d) + "-m" + strconv.Itoa(i)
	}
	return runID + "-d" + strconv.Itoa(d) + "-m" + strconv.Itoa(i) + "-r" + strconv.Itoa(j)
}

// DeviceID returns device d's id.
func DeviceID(prefix string, d int) string { return prefix + "dev-" + strconv.Itoa(d) }

// appendReading appends reading's JSON as json.Marshal writes it (keys
// sorted), without reflection: the simulated devices share the box with
// the role they load, and json.Marshal of the maps cost twice the
// connector's own CPU per reading.
func appendReading(b []byte, runID, dev string, d, i, j int, ts int64) []byte {
	b = append(b, `{"batteryLevel":80,"bloodPressure":{"diastolic":`...)
	b = strconv.AppendInt(b, int64(70+i%15), 10)
	b = append(b, `,"systolic":`...)
	b = strconv.AppendInt(b, int64(110+i%30), 10)
	b = append(b, `},"deviceId":`...)
	b = appendString(b, dev)
	b = append(b, `,"heartRate":`...)
	b = strconv.AppendInt(b, int64(60+(i+j)%40), 10)
	b = append(b, `,"messageId":`...)
	if plain(runID) { // MessageID appended in place
		b = append(b, '"')
		b = append(b, runID...)
		b = append(b, "-d"...)
		b = strconv.AppendInt(b, int64(d), 10)
		b = append(b, "-m"...)
		b = strconv.AppendInt(b, int64(i), 10)
		if j >= 0 {
			b = append(b, "-r"...)
			b = strconv.AppendInt(b, int64(j), 10)
		}
		b = append(b, '"')
	} else {
		b = appendString(b, MessageID(runID, d, i, j))
	}
	b = append(b, `,"spo2":97,"temperature":36.8,"timestamp":`...)
	b = strconv.AppendInt(b, ts, 10)
	return append(b, '}')
}

// plain reports whether json.Marshal writes s as it is, between quotes.
func plain(s string) bool {
	for k := 0; k < len(s); k++ {
		if c := s[k]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string the way json.Marshal does
// (json.Marshal itself for anything it escapes).
func appendString(b []byte, s string) []byte {
	if !plain(s) {
		q, _ := json.Marshal(s)
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Payload returns the topic and body of publish i of device d.
func (o Options) Payload(d, i int, now time.Time) (string, []byte) {
	dev := DeviceID(o.ClientPrefix, d)
	ts := now.UnixMilli()
	if o.Batch > 0 {
		b := make([]byte, 0, 64+o.Batch*(200+len(o.RunID)+2*len(dev)))
		b = append(b, `{"batchId":`...)
		b = appendString(b, MessageID(o.RunID, d, i, -1))
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(o.Batch), 10)
		b = append(b, `,"deviceId":`...)
		b = appendString(b, dev)
		b = append(b, `,"messages":[`...)
		for j := range o.Batch {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendReading(b, o.RunID, dev, d, i, j, ts)
		}
		b = append(b, "]}"...)
		return o.TopicRoot + "medical/devices/batch/telemetry", b
	}
	b := appendReading(make([]byte, 0, 200+len(o.RunID)+2*len(dev)), o.RunID, dev, d, i, -1, ts)
	return o.TopicRoot + "medical/" + o.Tenant + "/" + o.DeviceType + "/" + dev + "/vitals", b
}

// Dial connects one MQTT v5 client (clean session) to url.
func Dial(ctx context.Context, rawURL, clientID string, onPublish func(paho.PublishReceived) (bool, error)) (*paho.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("mqtt url %q: %w", rawURL, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dialing mqtt broker %s: %w", u.Host, err)
	}
	cc := paho.ClientConfig{Conn: conn, ClientID: clientID}
	if onPublish != nil {
		cc.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPublish}
	}
	cl := paho.NewClient(cc)
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connecting to mqtt broker %s as %s: %w", u.Host, clientID, err)
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("mqtt broker %s refused %s: reason %d", u.Host, clientID, ca.ReasonCode)
	}
	return cl, nil
}

// Run publishes o.Messages publishes from each of o.Devices devices and
// returns when every publish was sent (QoS 0) or acknowledged by the broker
// (QoS 1), or ctx is done. progress, when not nil, is incremented per
// acknowledged publish.
func Run(ctx context.Context, o Options, progress *atomic.Int64) (Stats, error) {
	if o.InFlight <= 0 {
		o.InFlight = 8
	}
	if o.RunID == "" {
		o.RunID = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if o.Tenant == "" {
		o.Tenant = "sim"
	}
	if o.DeviceType == "" {
		o.DeviceType = "vitals-monitor"
	}
	start := time.Now()
	var pubs atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for d := 0; d < o.Devices; d++ {
		g.Go(func() error {
			cl, err := Dial(gctx, o.URL, o.ClientPrefix+"sim-"+strconv.Itoa(d)+"-"+o.RunID, nil)
			if err != nil {
				return err
			}
			defer cl.Disconnect(&paho.Disconnect{})
			next := atomic.Int64{}
			var wg sync.WaitGroup
			errs := make(chan error, o.InFlight)
			for w := 0; w < o.InFlight; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= o.Messages || gctx.Err() != nil {
							return
						}
						topic, body := o.Payload(d, i, time.Now())
						if _, err := cl.Publish(gctx, &paho.Publish{Topic: topic, QoS: o.QoS, Payload: body}); err != nil {
							errs <- fmt.Errorf("device %d publish %d: %w", d, i, err)
							return
						}
						pubs.Add(1)
						if progress != nil {
							progress.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		})
	}
	err := g.Wait()
	n := pubs.Load()
	per := int64(1)
	if o.Batch > 0 {
		per = int64(o.Batch)
	}
	return Stats{Publishes: n, Readings: n * per, Elapsed: time.Since(start)}, err
}
