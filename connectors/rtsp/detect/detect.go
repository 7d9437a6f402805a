// Package detect runs YOLOv8/YOLO11-style object detection models through
// ONNX Runtime (github.com/yalue/onnxruntime_go).
//
// A [Detector] loads one model into a pool of sessions (by default one per
// core, each single-threaded, so that many cameras share the cores without
// oversubscription), letterboxes RGB frames into the model's input tensor,
// and decodes the model's output (1 x (4+C) x N: box centre, size and C
// class scores per candidate, as Ultralytics exports it; the transposed
// 1 x N x (4+C) layout is accepted too) with per-class confidence
// thresholds and class-aware non-maximum suppression. Class names come
// from the model's "names" metadata (Ultralytics writes it) or a labels
// file.
//
// Detect does not decode video or track objects over time; see the decode
// and events packages. ONNX Runtime is a process-wide shared library:
// [Init] loads it once and it stays loaded for the life of the process.
package detect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvLibrary names the env var that overrides the ONNX Runtime library path.
const EnvLibrary = "ONNXRUNTIME_LIB"

// DefaultLibrary is where deploy/local/onnxruntime.sh puts the pinned
// ONNX Runtime shared library, relative to the repository root.
const DefaultLibrary = ".local/onnxruntime/lib/libonnxruntime.so"

var (
	initMu   sync.Mutex
	initPath string
)

// Init loads the ONNX Runtime shared library at path (env ONNXRUNTIME_LIB
// wins when set) and initializes its environment. Later calls with the
// same library are no-ops; a different path after a successful Init is an
// error, since one process can load only one runtime. Safe for concurrent use.
func Init(path string) error {
	if env := os.Getenv(EnvLibrary); env != "" {
		path = env
	}
	if path == "" {
		path = DefaultLibrary
	}
	initMu.Lock()
	defer initMu.Unlock()
	if ort.IsInitialized() {
		if initPath != path {
			return fmt.Errorf("detect: onnxruntime already loaded from %s, cannot load %s", initPath, path)
		}
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("detect: onnxruntime library (run deploy/local/onnxruntime.sh or set %s): %w", EnvLibrary, err)
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("detect: initializing onnxruntime from %s: %w", path, err)
	}
	initPath = path
	return nil
}

// Config describes one model and how its output is filtered.
type Config struct {
	// Model is the path of the .onnx file.
	Model string `yaml:"model"`
	// Labels is an optional file with one class name per line (line i is
	// class i). Without it the names come from the model's "names" metadata,
	// and without that the classes are called "class0", "class1", ...
	Labels string `yaml:"labels"`
	// InputWidth and InputHeight override the model's input size; needed
	// only for models exported with dynamic axes and no "imgsz" metadata.
	InputWidth  int `yaml:"input_width"`
	InputHeight int `yaml:"input_height"`
	// Confidence is the default minimum class score (0.25).
	Confidence float32 `yaml:"confidence"`
	// ClassConfidence overrides Confidence per class name.
	ClassConfidence map[string]float32 `yaml:"class_confidence"`
	// Classes, when set, keeps only detections of these class names.
	Classes []string `yaml:"classes"`
	// IoU is the NMS overlap above which the weaker box is dropped (0.45).
	IoU float32 `yaml:"iou"`
	// MaxDetections caps detections per frame (100).
	MaxDetections int `yaml:"max_detections"`
	// Sessions is the session pool size; 0 means one per core.
	Sessions int `yaml:"sessions"`
	// Threads is ONNX Runtime's intra-op threads per session (1).
	Threads int `yaml:"threads"`
}

// DefaultConfig returns the defaults (no model path).
func DefaultConfig() Config {
	return Config{Confidence: 0.25, IoU: 0.45, MaxDetections: 100, Threads: 1}
}

// Validate reports every problem, each prefixed with its field name.
func (c Config) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (path of an .onnx file)"))
	}
	if c.Confidence <= 0 || c.Confidence >= 1 {
		errs = append(errs, fmt.Errorf("confidence: %v not in (0,1)", c.Confidence))
	}
	for k, v := range c.ClassConfidence {
		if v <= 0 || v >= 1 {
			errs = append(errs, fmt.Errorf("class_confidence[%q]: %v not in (0,1)", k, v))
		}
	}
	if c.IoU <= 0 || c.IoU > 1 {
		errs = append(errs, fmt.Errorf("iou: %v not in (0,1]", c.IoU))
	}
	if c.MaxDetections <= 0 {
		errs = append(errs, fmt.Errorf("max_detections: %d must be > 0", c.MaxDetections))
	}
	if c.Sessions < 0 || c.Threads < 0 {
		errs = append(errs, errors.New("sessions, threads: must be >= 0"))
	}
	if (c.InputWidth == 0) != (c.InputHeight == 0) || c.InputWidth < 0 || c.InputHeight < 0 {
		errs = append(errs, fmt.Errorf("input_width, input_height: set both or neither (got %d, %d)", c.InputWidth, c.InputHeight))
	}
	return errors.Join(errs...)
}

// Box is a normalized box: top-left corner and size as fractions of the
// source frame.
type Box struct{ X, Y, W, H float32 }

// Detection is one detected object.
type Detection struct {
	ClassID    int
	Class      string
	Confidence float32
	Box        Box
}

// Geometry says how a source frame maps into the model input: the frame
// is scaled by Scale to W x H pixels and placed at (PadX, PadY) in the
// InW x InH input, the rest filled with grey (YOLO's letterbox).
type Geometry struct {
	SrcW, SrcH int
	W, H       int
	PadX, PadY int
	InW, InH   int
	Scale      float64
}

// Detector runs one model through a pool of sessions. Safe for concurrent use.
type Detector struct {
	cfg     Config
	name    string
	version string
	names   []string
	inW     int
	inH     int
	attrs   int // 4 + classes
	anchors int
	transp  bool
	minConf []float32 // per class; +Inf drops the class
	pool    chan *slot
	all     []*slot
}

type slot struct {
	sess *ort.AdvancedSession
	in   *ort.Tensor[float32]
	out  *ort.Tensor[float32]
	cand []cand
	keep []cand
}

type cand struct {
	cls        int
	conf       float32
	x1, y1     float32
	x2, y2     float32
	suppressed bool
}

// New loads the model and creates the session pool. [Init] must have
// succeeded first.
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	if !ort.IsInitialized() {
		return nil, errors.New("detect: onnxruntime not initialized (call detect.Init)")
	}
	ins, outs, err := ort.GetInputOutputInfo(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("detect: reading model %s: %w", cfg.Model, err)
	}
	if len(ins) != 1 || len(outs) < 1 {
		return nil, fmt.Errorf("detect: model %s has %d inputs and %d outputs, want 1 image input and a detection output", cfg.Model, len(ins), len(outs))
	}
	d := &Detector{cfg: cfg, name: strings.TrimSuffix(filepath.Base(cfg.Model), filepath.Ext(cfg.Model))}
	meta, err := ort.GetModelMetadata(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("detect: model %s metadata: %w", cfg.Model, err)
	}
	metaNames, _, _ := meta.LookupCustomMetadataMap("names")
	imgsz, _, _ := meta.LookupCustomMetadataMap("imgsz")
	if v, ok, _ := meta.LookupCustomMetadataMap("version"); ok {
		d.version = v
	} else if v, err := meta.GetVersion(); err == nil && v != 0 {
		d.version = strconv.FormatInt(v, 10)
	}
	if g, err := meta.GetGraphName(); err == nil && g != "" && g != "main_graph" && g != "torch_jit" {
		d.name = g
	}
	meta.Destroy()

	// Input size: model dims, else config, else metadata imgsz.
	dims := ins[0].Dimensions
	if len(dims) != 4 || (dims[1] != 3 && dims[1] > 0) {
		return nil, fmt.Errorf("detect: model %s input %q has shape %v, want [1,3,H,W]", cfg.Model, ins[0].Name, dims)
	}
	d.inH, d.inW = int(dims[2]), int(dims[3])
	if cfg.InputWidth > 0 {
		d.inW, d.inH = cfg.InputWidth, cfg.InputHeight
	} else if d.inW <= 0 || d.inH <= 0 {
		h, w, ok := parseImgsz(imgsz)
		if !ok {
			return nil, fmt.Errorf("detect: model %s has dynamic input size and no imgsz metadata: set input_width and input_height", cfg.Model)
		}
		d.inW, d.inH = w, h
	}

	// Labels.
	switch {
	case cfg.Labels != "":
		d.names, err = readLabels(cfg.Labels)
		if err != nil {
			return nil, err
		}
	case metaNames != "":
		d.names, err = ParseNames(metaNames)
		if err != nil {
			return nil, fmt.Errorf("detect: model %s names metadata: %w", cfg.Model, err)
		}
	}

	// Output layout: [1, 4+C, N] (Ultralytics) or [1, N, 4+C].
	od := outs[0].Dimensions
	if len(od) != 3 {
		return nil, fmt.Errorf("detect: model %s output %q has shape %v, want [1, 4+C, N]", cfg.Model, outs[0].Name, od)
	}
	a, n := int(od[1]), int(od[2])
	if a <= 0 || n <= 0 {
		// Dynamic output dims: run once with a probe to learn them.
		a, n, err = probeOutput(cfg.Model, ins[0].Name, outs[0].Name, d.inW, d.inH)
		if err != nil {
			return nil, err
		}
	}
	if a > n {
		a, n = n, a
		d.transp = true
	}
	if a < 5 {
		return nil, fmt.Errorf("detect: model %s output %v has no class scores", cfg.Model, od)
	}
	d.attrs, d.anchors = a, n
	classes := a - 4
	for len(d.names) < classes {
		d.names = append(d.names, fmt.Sprintf("class%d", len(d.names)))
	}
	if err := checkClassNames(d.names[:classes], cfg); err != nil {
		return nil, fmt.Errorf("detect: model %s: %w", cfg.Model, err)
	}
	keep := map[string]bool{}
	for _, c := range cfg.Classes {
		keep[c] = true
	}
	d.minConf = make([]float32, classes)
	for i := range d.minConf {
		d.minConf[i] = cfg.Confidence
		if v, ok := cfg.ClassConfidence[d.names[i]]; ok {
			d.minConf[i] = v
		}
		if len(keep) > 0 && !keep[d.names[i]] {
			d.minConf[i] = float32(math.Inf(1))
		}
	}

	n0 := cfg.Sessions
	if n0 == 0 {
		n0 = runtime.NumCPU()
	}
	threads := cfg.Threads
	if threads == 0 {
		threads = 1
	}
	d.pool = make(chan *slot, n0)
	for i := 0; i < n0; i++ {
		s, err := d.newSlot(ins[0].Name, outs[0].Name, threads)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.all = append(d.all, s)
		d.pool <- s
	}
	return d, nil
}

func (d *Detector) newSlot(inName, outName string, threads int) (*slot, error) {
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(d.inH), int64(d.inW)))
	if err != nil {
		return nil, fmt.Errorf("detect: input tensor: %w", err)
	}
	shape := ort.NewShape(1, int64(d.attrs), int64(d.anchors))
	if d.transp {
		shape = ort.NewShape(1, int64(d.anchors), int64(d.attrs))
	}
	out, err := ort.NewEmptyTensor[float32](shape)
	if err != nil {
		in.Destroy()
		return nil, fmt.Errorf("detect: output tensor: %w", err)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		in.Destroy()
		out.Destroy()
		return nil, fmt.Errorf("detect: session options: %w", err)
	}
	defer opts.Destroy()
	_ = opts.SetIntraOpNumThreads(threads)
	_ = opts.SetInterOpNumThreads(1)
	sess, err := ort.NewAdvancedSession(d.cfg.Model, []string{inName}, []string{outName},
		[]ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		in.Destroy()
		out.Destroy()
		return nil, fmt.Errorf("detect: session for %s: %w", d.cfg.Model, err)
	}
	return &slot{sess: sess, in: in, out: out, cand: make([]cand, 0, 256)}, nil
}

// checkClassNames reports classes and class_confidence entries that name
// no class of the model: a typo there would otherwise silently drop every
// detection or leave a threshold unapplied.
func checkClassNames(names []string, cfg Config) error {
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	var errs []error
	for _, c := range cfg.Classes {
		if !known[c] {
			errs = append(errs, fmt.Errorf("classes: %q is not a class of the model", c))
		}
	}
	var thr []string
	for c := range cfg.ClassConfidence {
		thr = append(thr, c)
	}
	sort.Strings(thr)
	for _, c := range thr {
		if !known[c] {
			errs = append(errs, fmt.Errorf("class_confidence: %q is not a class of the model", c))
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("the model's classes: %s", truncate(strings.Join(names, ", "))))
	}
	return errors.Join(errs...)
}

func probeOutput(model, inName, outName string, w, h int) (int, int, error) {
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(h), int64(w)))
	if err != nil {
		return 0, 0, err
	}
	defer in.Destroy()
	s, err := ort.NewDynamicAdvancedSession(model, []string{inName}, []string{outName}, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("detect: probing %s: %w", model, err)
	}
	defer s.Destroy()
	outs := []ort.Value{nil}
	if err := s.Run([]ort.Value{in}, outs); err != nil {
		return 0, 0, fmt.Errorf("detect: probing %s: %w", model, err)
	}
	defer outs[0].Destroy()
	sh := outs[0].GetShape()
	if len(sh) != 3 {
		return 0, 0, fmt.Errorf("detect: model %s output shape %v, want 3 dims", model, sh)
	}
	return int(sh[1]), int(sh[2]), nil
}

// Name returns the model name (graph name, else the file name).
func (d *Detector) Name() string { return d.name }

// Version returns the model's "version" metadata or its model version.
func (d *Detector) Version() string { return d.version }

// Classes returns the class names, index = class id.
func (d *Detector) Classes() []string { return append([]string(nil), d.names...) }

// InputSize returns the model input width and height.
func (d *Detector) InputSize() (int, int) { return d.inW, d.inH }

// Sessions returns the pool size.
func (d *Detector) Sessions() int { return len(d.all) }

// Geometry returns the letterbox placement of a srcW x srcH frame.
func (d *Detector) Geometry(srcW, srcH int) Geometry {
	return Letterbox(srcW, srcH, d.inW, d.inH)
}

// Letterbox computes the YOLO letterbox: scale to fit, centred, no upscaling
// beyond the input.
func Letterbox(srcW, srcH, inW, inH int) Geometry {
	g := Geometry{SrcW: srcW, SrcH: srcH, InW: inW, InH: inH}
	if srcW <= 0 || srcH <= 0 {
		return g
	}
	g.Scale = math.Min(float64(inW)/float64(srcW), float64(inH)/float64(srcH))
	g.W = max(1, int(math.Round(float64(srcW)*g.Scale)))
	g.H = max(1, int(math.Round(float64(srcH)*g.Scale)))
	g.W, g.H = min(g.W, inW), min(g.H, inH)
	g.PadX, g.PadY = (inW-g.W)/2, (inH-g.H)/2
	return g
}

// padValue is YOLO's letterbox grey, 114/255.
const padValue = 114.0 / 255.0

// Detect runs the model on rgb, a packed RGB24 image of g.W x g.H pixels
// (rows 3*g.W bytes apart) that is the source frame already scaled for
// g (the decoder scales in its colour conversion). It waits for a free
// session or ctx. It returns the detections, best first, and the time
// the model run took (tensor fill and decode excluded).
func (d *Detector) Detect(ctx context.Context, rgb []byte, g Geometry) ([]Detection, time.Duration, error) {
	if g.InW != d.inW || g.InH != d.inH {
		return nil, 0, fmt.Errorf("detect: geometry for %dx%d input, model wants %dx%d", g.InW, g.InH, d.inW, d.inH)
	}
	if len(rgb) < 3*g.W*g.H {
		return nil, 0, fmt.Errorf("detect: rgb buffer %d bytes, want %d for %dx%d", len(rgb), 3*g.W*g.H, g.W, g.H)
	}
	var s *slot
	select {
	case s = <-d.pool:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { d.pool <- s }()
	fill(s.in.GetData(), rgb, g)
	start := time.Now()
	if err := s.sess.Run(); err != nil {
		return nil, 0, fmt.Errorf("detect: running %s: %w", d.name, err)
	}
	took := time.Since(start)
	return d.decode(s, s.out.GetData(), g), took, nil
}

var lut = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return
}()

// fill writes the letterboxed CHW float tensor.
func fill(dst []float32, rgb []byte, g Geometry) {
	plane := g.InW * g.InH
	r, gg, b := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	for y := 0; y < g.InH; y++ {
		row := y * g.InW
		sy := y - g.PadY
		if sy < 0 || sy >= g.H {
			for x := 0; x < g.InW; x++ {
				r[row+x], gg[row+x], b[row+x] = padValue, padValue, padValue
			}
			continue
		}
		for x := 0; x < g.PadX; x++ {
			r[row+x], gg[row+x], b[row+x] = padValue, padValue, padValue
		}
		src := rgb[sy*3*g.W : (sy+1)*3*g.W]
		o := row + g.PadX
		for x := 0; x < g.W; x++ {
			r[o+x] = lut[src[3*x]]
			gg[o+x] = lut[src[3*x+1]]
			b[o+x] = lut[src[3*x+2]]
		}
		for x := g.PadX + g.W; x < g.InW; x++ {
			r[row+x], gg[row+x], b[row+x] = padValue, padValue, padValue
		}
	}
}

// decode turns raw output into detections (boxes normalized to the source).
func (d *Detector) decode(s *slot, out []float32, g Geometry) []Detection {
	s.cand = candidates(s.cand[:0], out, d.attrs, d.anchors, d.transp, d.minConf)
	s.keep = nms(s.keep[:0], s.cand, d.cfg.IoU, d.cfg.MaxDetections)
	dets := make([]Detection, 0, len(s.keep))
	for _, c := range s.keep {
		x1 := clamp01((float64(c.x1) - float64(g.PadX)) / g.Scale / float64(g.SrcW))
		y1 := clamp01((float64(c.y1) - float64(g.PadY)) / g.Scale / float64(g.SrcH))
		x2 := clamp01((float64(c.x2) - float64(g.PadX)) / g.Scale / float64(g.SrcW))
		y2 := clamp01((float64(c.y2) - float64(g.PadY)) / g.Scale / float64(g.SrcH))
		if x2 <= x1 || y2 <= y1 {
			continue
		}
		dets = append(dets, Detection{ClassID: c.cls, Class: d.names[c.cls], Confidence: c.conf,
			Box: Box{X: float32(x1), Y: float32(y1), W: float32(x2 - x1), H: float32(y2 - y1)}})
	}
	return dets
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

// candidates appends, for each anchor whose best class score reaches that
// class's threshold, a candidate box in input pixels. out holds attrs x
// anchors values (anchors x attrs when transposed). minConf has one
// threshold per class (len attrs-4).
func candidates(dst []cand, out []float32, attrs, anchors int, transposed bool, minConf []float32) []cand {
	if len(out) < attrs*anchors || len(minConf) < attrs-4 {
		return dst
	}
	at := func(a, i int) float32 { return out[a*anchors+i] }
	if transposed {
		at = func(a, i int) float32 { return out[i*attrs+a] }
	}
	for i := 0; i < anchors; i++ {
		best, bc := float32(-1), -1
		for c := 4; c < attrs; c++ {
			if v := at(c, i); v > best {
				best, bc = v, c-4
			}
		}
		if bc < 0 || !(best >= minConf[bc]) {
			continue
		}
		cx, cy, w, h := at(0, i), at(1, i), at(2, i), at(3, i)
		// Drop empty and non-finite boxes: clamping keeps NaN, and a NaN
		// box would reach Kafka and the sink.
		if !(w > 0 && h > 0) || !finite(cx) || !finite(cy) || !finite(w) || !finite(h) {
			continue
		}
		dst = append(dst, cand{cls: bc, conf: best, x1: cx - w/2, y1: cy - h/2, x2: cx + w/2, y2: cy + h/2})
	}
	return dst
}

func finite(v float32) bool { return v-v == 0 }

// nms keeps the best candidates of each class, dropping any that overlaps
// a better one of the same class by more than iou, at most maxDet in all.
// It sorts cands in place (score descending, then position, so that ties
// resolve deterministically).
func nms(dst []cand, cands []cand, iou float32, maxDet int) []cand {
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.conf != b.conf {
			return a.conf > b.conf
		}
		if a.y1 != b.y1 {
			return a.y1 < b.y1
		}
		return a.x1 < b.x1
	})
	for i := range cands {
		cands[i].suppressed = false
	}
	for i := range cands {
		if cands[i].suppressed {
			continue
		}
		dst = append(dst, cands[i])
		if len(dst) == maxDet {
			break
		}
		for j := i + 1; j < len(cands); j++ {
			if !cands[j].suppressed && cands[j].cls == cands[i].cls && boxIoU(cands[i], cands[j]) > iou {
				cands[j].suppressed = true
			}
		}
	}
	return dst
}

func boxIoU(a, b cand) float32 {
	ix := min(a.x2, b.x2) - max(a.x1, b.x1)
	iy := min(a.y2, b.y2) - max(a.y1, b.y1)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	union := (a.x2-a.x1)*(a.y2-a.y1) + (b.x2-b.x1)*(b.y2-b.y1) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// IoU returns the intersection over union of two normalized boxes.
func IoU(a, b Box) float32 {
	return boxIoU(cand{x1: a.X, y1: a.Y, x2: a.X + a.W, y2: a.Y + a.H}, cand{x1: b.X, y1: b.Y, x2: b.X + b.W, y2: b.Y + b.H})
}

// Close destroys the sessions. Detect must not be running or called after.
func (d *Detector) Close() {
	for _, s := range d.all {
		s.sess.Destroy()
		s.in.Destroy()
		s.out.Destroy()
	}
	d.all = nil
}

var nameEntry = regexp.MustCompile(`(\d+)\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")`)

// ParseNames parses Ultralytics' "names" metadata, a Python dict literal
// such as "{0: 'person', 1: 'bicycle'}" (JSON-style double quotes work
// too), into a slice indexed by class id. Missing ids get "classN".
func ParseNames(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, fmt.Errorf("names %q is not a {id: 'name'} dict", truncate(s))
	}
	m := map[int]string{}
	hi := -1
	for _, e := range nameEntry.FindAllStringSubmatch(s, -1) {
		id, err := strconv.Atoi(e[1])
		if err != nil || id > 100_000 {
			return nil, fmt.Errorf("names: class id %q out of range", e[1])
		}
		n := e[2]
		if n == "" {
			n = e[3]
		}
		m[id] = n
		hi = max(hi, id)
	}
	if hi < 0 {
		return nil, fmt.Errorf("names %q has no entries", truncate(s))
	}
	out := make([]string, hi+1)
	for i := range out {
		if n, ok := m[i]; ok {
			out[i] = n
		} else {
			out[i] = fmt.Sprintf("class%d", i)
		}
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func parseImgsz(s string) (h, w int, ok bool) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' })
	if len(f) == 1 {
		f = append(f, f[0])
	}
	if len(f) != 2 {
		return 0, 0, false
	}
	h, e1 := strconv.Atoi(f[0])
	w, e2 := strconv.Atoi(f[1])
	return h, w, e1 == nil && e2 == nil && h > 0 && w > 0
}

func readLabels(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("detect: labels file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("detect: labels file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("detect: labels file %s is empty", path)
	}
	return out, nil
}
