package rtsp

import (
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wardstream/wardstream/connectors/rtsp/decode"
)

// TestQueueDropsOldest checks the per-camera queue: bounded, oldest frame
// dropped and counted, the camera on the ready list at most once.
func TestQueueDropsOldest(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueFrames = 2
	c := &Connector{cfg: cfg, m: newMetrics(prometheus.NewRegistry())}
	ready := make(chan *camera, 1)
	cam := &camera{c: c, ready: ready, cm: c.m.camera("cam-1")}
	for i := int64(1); i <= 5; i++ {
		cam.push(&frame{seq: i})
	}
	if len(ready) != 1 {
		t.Fatalf("camera on the ready list %d times", len(ready))
	}
	<-ready
	if f := cam.pop(); f == nil || f.seq != 4 {
		t.Fatalf("first frame %v, want seq 4 (1-3 dropped)", f)
	}
	cam.requeue() // one frame left: back on the list
	if len(ready) != 1 {
		t.Fatal("camera with a queued frame not requeued")
	}
	<-ready
	if f := cam.pop(); f == nil || f.seq != 5 {
		t.Fatalf("second frame %v", f)
	}
	cam.requeue()
	if len(ready) != 0 || cam.scheduled {
		t.Fatal("idle camera left scheduled")
	}
	if got := counterValue(t, c.m.dropped); got != 3 {
		t.Fatalf("dropped %v, want 3", got)
	}
	if got := counterValue(t, c.m.camDropped.WithLabelValues("cam-1")); got != 3 {
		t.Fatalf("camera cam-1 dropped %v, want 3", got)
	}
	// Dropped buffers are recycled.
	if len(cam.free) != 3 {
		t.Fatalf("%d free buffers, want 3", len(cam.free))
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestTrackSelection(t *testing.T) {
	cases := []struct {
		sdp  string
		want decode.Codec
	}{
		{"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n", decode.H264},
		{"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n", decode.H265},
		{"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\n", decode.MJPEG},
		{"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n", 0},
	}
	for _, c := range cases {
		tr, err := trackFromSDP([]byte(c.sdp))
		if c.want == 0 {
			if err == nil {
				t.Errorf("audio-only SDP gave track %v", tr.codec)
			}
			continue
		}
		if err != nil || tr.codec != c.want {
			t.Errorf("SDP %q: track %v err %v, want %v", c.sdp, tr, err, c.want)
		}
	}
}

func trackFromSDP(b []byte) (*track, error) {
	var s sdp.SessionDescription
	if err := s.Unmarshal(b); err != nil {
		return nil, err
	}
	var d description.Session
	if err := d.Unmarshal(&s); err != nil {
		return nil, err
	}
	return newTrack(&d)
}

// FuzzTrackFromSDP feeds arbitrary SDP (what a camera answers to
// DESCRIBE) through parsing and track selection: no panics, and a chosen
// track is one we can decode.
func FuzzTrackFromSDP(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAH6zZQFAFuwEQAAADABAAAAMDwPGDGWA=,aOvjyyLA\r\n"))
	f.Add([]byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-vps=AAAA\r\n"))
	f.Add([]byte("v=0\r\nm=video 0 RTP/AVP 26\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := trackFromSDP(b)
		if err == nil && tr.codec != decode.H264 && tr.codec != decode.H265 && tr.codec != decode.MJPEG {
			t.Fatalf("track with codec %v", tr.codec)
		}
	})
}
