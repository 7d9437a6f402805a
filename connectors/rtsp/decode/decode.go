// Package decode provides video decoding for the rtsp connector through
// FFmpeg's libavcodec and libswscale (cgo; pkg-config libavcodec libavutil
// libswscale).
//
// A [Decoder] decodes one elementary stream: H.264 or H.265 access units in
// Annex-B form, or M-JPEG frames. It decodes every access unit it is given
// (inter-coded video needs them all) but converts a picture to RGB only when
// asked ([Decoder.RGB]), scaling it in the same libswscale pass straight to
// the size the detector wants. That keeps the per-frame cost of a camera
// sampled at 5 of 25 fps close to the bare decode cost.
//
// A Decoder is not safe for concurrent use: the connector owns one per
// camera session. It does not parse RTP or SDP; see the rtsp package.
package decode

// #cgo pkg-config: libavcodec libavutil libswscale
// #include <libavcodec/avcodec.h>
// #include <libavutil/imgutils.h>
// #include <libavutil/error.h>
// #include <libavutil/log.h>
// #include <libswscale/swscale.h>
//
// static int ws_averror_eagain(void) { return AVERROR(EAGAIN); }
// static int ws_averror_eof(void) { return AVERROR_EOF; }
// static uint8_t *ws_plane(AVFrame *f, int i) { return f->data[i]; }
// static int ws_linesize(AVFrame *f, int i) { return f->linesize[i]; }
// static int ws_scale(struct SwsContext *c, AVFrame *src, uint8_t *dst, int dstStride) {
//   uint8_t *dstData[4] = {dst, NULL, NULL, NULL};
//   int dstLines[4] = {dstStride, 0, 0, 0};
//   return sws_scale(c, (const uint8_t * const *)src->data, src->linesize, 0, src->height, dstData, dstLines);
// }
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Codec is a compressed video format the decoder accepts.
type Codec int

// Supported codecs.
const (
	// H264 takes Annex-B access units (start codes before each NAL unit).
	H264 Codec = iota + 1
	// H265 takes Annex-B access units.
	H265
	// MJPEG takes one complete JPEG image per call.
	MJPEG
)

// String returns the codec's name as used in configs and metrics.
func (c Codec) String() string {
	switch c {
	case H264:
		return "h264"
	case H265:
		return "h265"
	case MJPEG:
		return "mjpeg"
	}
	return fmt.Sprintf("codec(%d)", int(c))
}

// ErrClosed is returned by every method of a Decoder after Close.
var ErrClosed = errors.New("decoder closed")

// ErrNoFrame is returned by [Decoder.RGB] and [Decoder.Luma] before the
// first picture was decoded.
var ErrNoFrame = errors.New("no decoded frame yet")

var quietOnce sync.Once

// Decoder decodes one video stream. The zero value is not usable; call [New].
type Decoder struct {
	codec   Codec
	ctx     *C.AVCodecContext
	frame   *C.AVFrame
	tmp     *C.AVFrame
	pkt     *C.AVPacket
	sws     *C.struct_SwsContext
	swsKey  [5]int // src w, h, fmt, dst w, h
	have    bool
	pinner  runtime.Pinner
	scratch []byte
}

// Options tunes a Decoder.
type Options struct {
	// Threads is libavcodec's thread count; 1 (the default) suits many
	// cameras per core best: frame threading adds latency and memory per
	// stream while the cores are already shared by the other cameras.
	Threads int
}

// New allocates a decoder for codec. It fails when this libavcodec build
// lacks the decoder.
func New(codec Codec, opts Options) (*Decoder, error) {
	// libavcodec logs every damaged packet to stderr; we count them in
	// metrics instead.
	quietOnce.Do(func() { C.av_log_set_level(C.AV_LOG_FATAL) })
	var id C.enum_AVCodecID
	switch codec {
	case H264:
		id = C.AV_CODEC_ID_H264
	case H265:
		id = C.AV_CODEC_ID_HEVC
	case MJPEG:
		id = C.AV_CODEC_ID_MJPEG
	default:
		return nil, fmt.Errorf("decode: unsupported codec %v", codec)
	}
	dec := C.avcodec_find_decoder(id)
	if dec == nil {
		return nil, fmt.Errorf("decode: libavcodec has no %v decoder", codec)
	}
	ctx := C.avcodec_alloc_context3(dec)
	if ctx == nil {
		return nil, fmt.Errorf("decode: allocating %v context failed", codec)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = 1
	}
	ctx.thread_count = C.int(threads)
	if res := C.avcodec_open2(ctx, dec, nil); res < 0 {
		C.avcodec_free_context(&ctx)
		return nil, fmt.Errorf("decode: opening %v decoder: %w", codec, averr(res))
	}
	d := &Decoder{codec: codec, ctx: ctx, frame: C.av_frame_alloc(), tmp: C.av_frame_alloc(), pkt: C.av_packet_alloc()}
	if d.frame == nil || d.tmp == nil || d.pkt == nil {
		d.Close()
		return nil, fmt.Errorf("decode: allocating %v frame failed", codec)
	}
	return d, nil
}

// Codec returns the codec the decoder was created for.
func (d *Decoder) Codec() Codec { return d.codec }

// Decode feeds one access unit (Annex-B for H.264/H.265, a JPEG for
// M-JPEG) and reports whether a new picture came out of it. Corrupt input
// returns an error wrapping libavcodec's message; the decoder stays usable
// and recovers at the next random-access point.
func (d *Decoder) Decode(data []byte) (bool, error) {
	if d.ctx == nil {
		return false, ErrClosed
	}
	if len(data) == 0 {
		return false, nil
	}
	// libavcodec may read up to AV_INPUT_BUFFER_PADDING_SIZE bytes past
	// the end of the input, so we hand it a padded copy.
	need := len(data) + C.AV_INPUT_BUFFER_PADDING_SIZE
	if cap(d.scratch) < need {
		d.scratch = make([]byte, need)
	}
	buf := d.scratch[:need]
	copy(buf, data)
	clear(buf[len(data):])
	d.pinner.Pin(&buf[0])
	d.pkt.data = (*C.uint8_t)(unsafe.Pointer(&buf[0]))
	d.pkt.size = C.int(len(data))
	res := C.avcodec_send_packet(d.ctx, d.pkt)
	d.pkt.data = nil
	d.pkt.size = 0
	d.pinner.Unpin()
	if res < 0 && res != C.ws_averror_eagain() {
		return false, fmt.Errorf("decode: %v packet of %d bytes: %w", d.codec, len(data), averr(res))
	}
	got := false
	for {
		// receive_frame unrefs its argument even when it has nothing to
		// give, so we receive into tmp and keep the last picture in frame.
		res = C.avcodec_receive_frame(d.ctx, d.tmp)
		if res == C.ws_averror_eagain() || res == C.ws_averror_eof() {
			break
		}
		if res < 0 {
			return got, fmt.Errorf("decode: %v frame: %w", d.codec, averr(res))
		}
		// With one thread and no B-frame reordering there is at most one
		// picture per packet; if more come, the latest wins.
		C.av_frame_unref(d.frame)
		C.av_frame_move_ref(d.frame, d.tmp)
		got = true
		d.have = true
	}
	return got, nil
}

// Size returns the last decoded picture's width and height (0, 0 before
// the first picture).
func (d *Decoder) Size() (int, int) {
	if d.ctx == nil || !d.have {
		return 0, 0
	}
	return int(d.frame.width), int(d.frame.height)
}

// RGB converts the last decoded picture to packed RGB24 of w x h pixels
// (scaling with bilinear filtering when the sizes differ) into dst, whose
// rows are stride bytes apart (stride >= 3*w). It returns ErrNoFrame
// before the first picture.
func (d *Decoder) RGB(dst []byte, w, h, stride int) error {
	if d.ctx == nil {
		return ErrClosed
	}
	if !d.have {
		return ErrNoFrame
	}
	if w <= 0 || h <= 0 || stride < 3*w || len(dst) < stride*(h-1)+3*w {
		return fmt.Errorf("decode: rgb buffer of %d bytes too small for %dx%d (stride %d)", len(dst), w, h, stride)
	}
	key := [5]int{int(d.frame.width), int(d.frame.height), int(d.frame.format), w, h}
	if d.sws == nil || key != d.swsKey {
		if d.sws != nil {
			C.sws_freeContext(d.sws)
		}
		d.sws = C.sws_getContext(d.frame.width, d.frame.height, int32(d.frame.format),
			C.int(w), C.int(h), C.AV_PIX_FMT_RGB24, C.SWS_BILINEAR, nil, nil, nil)
		if d.sws == nil {
			return fmt.Errorf("decode: no scaler from %dx%d pixfmt %d to %dx%d rgb24", key[0], key[1], key[2], w, h)
		}
		d.swsKey = key
	}
	d.pinner.Pin(&dst[0])
	res := C.ws_scale(d.sws, d.frame, (*C.uint8_t)(unsafe.Pointer(&dst[0])), C.int(stride))
	d.pinner.Unpin()
	if res < 0 {
		return fmt.Errorf("decode: scaling to %dx%d: %w", w, h, averr(res))
	}
	return nil
}

// Luma writes a w x h nearest-neighbour thumbnail of the last picture's
// luma plane into dst (len >= w*h). Every supported codec decodes to a
// planar YUV format whose first plane is luma; motion gating compares
// these thumbnails.
func (d *Decoder) Luma(dst []byte, w, h int) error {
	if d.ctx == nil {
		return ErrClosed
	}
	if !d.have {
		return ErrNoFrame
	}
	if w <= 0 || h <= 0 || len(dst) < w*h {
		return fmt.Errorf("decode: luma buffer of %d bytes too small for %dx%d", len(dst), w, h)
	}
	fw, fh := int(d.frame.width), int(d.frame.height)
	ls := int(C.ws_linesize(d.frame, 0))
	if ls <= 0 || fw <= 0 || fh <= 0 {
		return fmt.Errorf("decode: picture has no luma plane")
	}
	plane := unsafe.Slice((*byte)(unsafe.Pointer(C.ws_plane(d.frame, 0))), ls*fh)
	for y := 0; y < h; y++ {
		row := plane[(y*fh/h)*ls:]
		out := dst[y*w : y*w+w]
		for x := range out {
			out[x] = row[x*fw/w]
		}
	}
	return nil
}

// Close frees the decoder. It is safe to call more than once.
func (d *Decoder) Close() {
	if d.sws != nil {
		C.sws_freeContext(d.sws)
		d.sws = nil
	}
	if d.frame != nil {
		C.av_frame_free(&d.frame)
	}
	if d.tmp != nil {
		C.av_frame_free(&d.tmp)
	}
	if d.pkt != nil {
		C.av_packet_free(&d.pkt)
	}
	if d.ctx != nil {
		C.avcodec_free_context(&d.ctx)
	}
	d.have = false
}

func averr(code C.int) error {
	buf := make([]C.char, 128)
	C.av_strerror(code, &buf[0], C.size_t(len(buf)))
	return fmt.Errorf("libav error %d: %s", int(code), C.GoString(&buf[0]))
}
