package bench

import (
	"context"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// A synthetic camera must be playable by an RTSP client as H.264.
func TestSyntheticCameraPlays(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cams, err := startSyntheticCameras(ctx, "brun", 1, 5, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cams.stop()
	u, err := base.ParseURL(cams.URL(cams.ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var h264 *format.H264
	medi := desc.FindFormat(&h264)
	if medi == nil {
		t.Fatalf("no H.264 track in %v", desc.Medias)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		t.Fatal(err)
	}
	var pkts atomic.Int64
	c.OnPacketRTP(medi, h264, func(*rtp.Packet) { pkts.Add(1) })
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pkts.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := pkts.Load(); n < 10 {
		t.Fatalf("got %d RTP packets in 10 s", n)
	}
}
