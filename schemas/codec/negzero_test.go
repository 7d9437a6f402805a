package codec

import (
	"math"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestGokaNegativeZero pins the one value difference between the Goka
// codec's MarshalVT path and proto.Marshal (see [Goka]): a float or double
// field holding -0.0 is left out, so it reads back as +0 (== -0.0, though
// proto.Equal tells the two apart), and the bytes are those of the same
// message with +0.
func TestGokaNegativeZero(t *testing.T) {
	checked := 0
	for _, mt := range wardstreamTypes() {
		c := NewGoka(func() proto.Message { return mt.New().Interface() })
		if !c.vt {
			continue
		}
		neg, pos := mt.New(), mt.New()
		fs := neg.Descriptor().Fields()
		set := false
		for i := range fs.Len() {
			f := fs.Get(i)
			if f.IsList() || f.IsMap() || f.ContainingOneof() != nil {
				continue
			}
			switch f.Kind() {
			case protoreflect.DoubleKind:
				neg.Set(f, protoreflect.ValueOfFloat64(math.Copysign(0, -1)))
				set = true
			case protoreflect.FloatKind:
				neg.Set(f, protoreflect.ValueOfFloat32(float32(math.Copysign(0, -1))))
				set = true
			}
		}
		if !set {
			continue
		}
		checked++
		got, err := c.Encode(neg.Interface())
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(pos.Interface())
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s with -0.0 values: %x, want the bytes of +0 values %x", mt.Descriptor().Name(), got, want)
		}
		back := mt.New().Interface()
		if err := proto.Unmarshal(got, back); err != nil || !proto.Equal(back, pos.Interface()) {
			t.Errorf("%s with -0.0 values does not read back as +0: %v", mt.Descriptor().Name(), err)
		}
	}
	if checked == 0 {
		t.Fatal("no MarshalVT type with a float or double field")
	}
}
