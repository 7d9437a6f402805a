package decode_test

import (
	"context"
	"testing"

	"github.com/wardstream/wardstream/connectors/rtsp/decode"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
)

func annexB(au [][]byte) []byte {
	var b []byte
	for _, n := range au {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

func encoded(t testing.TB, c rtsptest.Codec) (rtsptest.Scene, [][][]byte) {
	t.Helper()
	if !rtsptest.Available() {
		t.Skip("ffmpeg not on PATH")
	}
	s := rtsptest.DefaultScene()
	s.Frames = 50
	aus, err := rtsptest.Encode(context.Background(), s, c)
	if err != nil {
		t.Fatal(err)
	}
	return s, aus
}

func payload(c rtsptest.Codec, au [][]byte) []byte {
	if c == rtsptest.MJPEG {
		return au[0]
	}
	return annexB(au)
}

func TestDecodeCodecs(t *testing.T) {
	for _, tc := range []struct {
		c   rtsptest.Codec
		dec decode.Codec
	}{{rtsptest.H264, decode.H264}, {rtsptest.H265, decode.H265}, {rtsptest.MJPEG, decode.MJPEG}} {
		t.Run(string(tc.c), func(t *testing.T) {
			s, aus := encoded(t, tc.c)
			d, err := decode.New(tc.dec, decode.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := d.RGB(make([]byte, 3*320*240), 320, 240, 960); err != decode.ErrNoFrame {
				t.Fatalf("RGB before a frame: %v", err)
			}
			rgb := make([]byte, 3*320*240)
			pictures := 0
			for i, au := range aus {
				got, err := d.Decode(payload(tc.c, au))
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !got {
					continue
				}
				pictures++
				if w, h := d.Size(); w != 640 || h != 480 {
					t.Fatalf("size %dx%d", w, h)
				}
				// Scaled to half size: the box centre must be red, a far
				// corner not.
				if err := d.RGB(rgb, 320, 240, 960); err != nil {
					t.Fatal(err)
				}
				bx, by := s.Box(i)
				cx, cy := (bx+s.BoxW/2)/2, (by+s.BoxH/2)/2
				o := 3 * (cy*320 + cx)
				if rgb[o] < 150 || rgb[o+1] > 90 || rgb[o+2] > 90 {
					t.Fatalf("frame %d: box centre colour %v", i, rgb[o:o+3])
				}
				luma := make([]byte, 32*24)
				if err := d.Luma(luma, 32, 24); err != nil {
					t.Fatal(err)
				}
			}
			// No B-frames and one thread: one picture per access unit.
			if pictures != len(aus) {
				t.Fatalf("%d pictures from %d access units", pictures, len(aus))
			}
		})
	}
}

func TestDecodeGarbage(t *testing.T) {
	d, err := decode.New(decode.H264, decode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, _ := d.Decode([]byte{0, 0, 0, 1, 0x65, 1, 2, 3, 4}); got {
		t.Fatal("picture from garbage")
	}
	d.Close()
	if _, err := d.Decode([]byte{1}); err != decode.ErrClosed {
		t.Fatalf("after close: %v", err)
	}
}

// FuzzDecodeH264 feeds arbitrary bytes (after a valid stream start) to
// the decoder: it must never crash and any picture must be 640x480.
func FuzzDecodeH264(f *testing.F) {
	if !rtsptest.Available() {
		f.Skip("ffmpeg not on PATH")
	}
	s := rtsptest.DefaultScene()
	s.Frames = 5
	aus, err := rtsptest.Encode(context.Background(), s, rtsptest.H264)
	if err != nil {
		f.Fatal(err)
	}
	for _, au := range aus {
		f.Add(annexB(au))
	}
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decode.New(decode.H264, decode.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		_, _ = d.Decode(annexB(aus[0]))
		if got, _ := d.Decode(data); got {
			if w, h := d.Size(); w <= 0 || h <= 0 {
				t.Fatalf("picture of %dx%d", w, h)
			}
			rgb := make([]byte, 3*64*48)
			_ = d.RGB(rgb, 64, 48, 3*64)
		}
	})
}

// BenchmarkDecode measures decoded frames/s per core at 640x480 (one
// libavcodec thread), and the cost of the RGB conversion the sampled
// frames need.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		c   rtsptest.Codec
		dec decode.Codec
	}{{rtsptest.H264, decode.H264}, {rtsptest.H265, decode.H265}, {rtsptest.MJPEG, decode.MJPEG}} {
		b.Run(string(c.c), func(b *testing.B) {
			_, aus := encoded(b, c.c)
			payloads := make([][]byte, len(aus))
			for i, au := range aus {
				payloads[i] = payload(c.c, au)
			}
			d, err := decode.New(c.dec, decode.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Decode(payloads[i%len(payloads)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
	b.Run("rgb-320x240", func(b *testing.B) {
		_, aus := encoded(b, rtsptest.H264)
		d, _ := decode.New(decode.H264, decode.Options{})
		defer d.Close()
		_, _ = d.Decode(annexB(aus[0]))
		rgb := make([]byte, 3*320*240)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := d.RGB(rgb, 320, 240, 960); err != nil {
				b.Fatal(err)
			}
		}
	})
}
