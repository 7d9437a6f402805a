package codec

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

var _ = pb.File_wardstream_v1_common_proto // the package's types are registered

// wardstreamTypes are every message type of the wardstream.v1 package.
func wardstreamTypes() []protoreflect.MessageType {
	var out []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if mt.Descriptor().ParentFile().Package() == "wardstream.v1" {
			out = append(out, mt)
		}
		return true
	})
	return out
}

// fill sets every field of m to a non-zero value (two elements for lists,
// nested messages to depth), so that each field's encoding is exercised.
func fill(m protoreflect.Message, depth int) {
	fs := m.Descriptor().Fields()
	for i := range fs.Len() {
		f := fs.Get(i)
		if f.IsMap() {
			mp := m.Mutable(f).Map()
			for j := range 2 {
				k := protoreflect.ValueOfString(fmt.Sprint("k", j)).MapKey()
				if f.MapKey().Kind() != protoreflect.StringKind {
					continue
				}
				if f.MapValue().Message() != nil {
					if depth > 0 {
						v := mp.NewValue()
						fill(v.Message(), depth-1)
						mp.Set(k, v)
					}
					continue
				}
				mp.Set(k, scalar(f.MapValue(), j))
			}
			continue
		}
		if f.IsList() {
			l := m.Mutable(f).List()
			for j := range 2 {
				if f.Message() != nil {
					if depth > 0 {
						v := l.NewElement()
						fill(v.Message(), depth-1)
						l.Append(v)
					}
					continue
				}
				l.Append(scalar(f, j))
			}
			continue
		}
		if f.Message() != nil {
			if depth > 0 {
				fill(m.Mutable(f).Message(), depth-1)
			}
			continue
		}
		if f.ContainingOneof() != nil && m.WhichOneof(f.ContainingOneof()) != nil {
			continue
		}
		m.Set(f, scalar(f, 1))
	}
}

func scalar(f protoreflect.FieldDescriptor, j int) protoreflect.Value {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vs := f.Enum().Values()
		return protoreflect.ValueOfEnum(vs.Get(vs.Len() - 1).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(-3 - j))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(-1_700_000_000_000 - int64(j))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(300 + j))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(1<<40 + j))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(j) + 0.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(j) - 72.25)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprint("é-", f.Name(), j))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{0, 0xff, byte(j)})
	}
	panic(fmt.Sprintf("no value for %s", f.Kind()))
}

// TestMarshalVTMatchesProto: for every message type the Goka codec writes
// with MarshalVT, the bytes equal the deterministic proto.Marshal's, for a
// message with every field set (and an empty one); types with maps keep
// proto.Marshal.
func TestMarshalVTMatchesProto(t *testing.T) {
	types := wardstreamTypes()
	if len(types) < 15 {
		t.Fatalf("only %d wardstream.v1 message types registered", len(types))
	}
	fast := 0
	for _, mt := range types {
		t.Run(string(mt.Descriptor().Name()), func(t *testing.T) {
			c := NewGoka(func() proto.Message { return mt.New().Interface() })
			if !c.vt {
				if !hasMap(mt.Descriptor(), map[protoreflect.FullName]bool{}) {
					t.Fatal("a map-free type without MarshalVT: regenerate with make proto")
				}
				return
			}
			fast++
			for _, depth := range []int{0, 3} {
				m := mt.New()
				fill(m, depth)
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.Interface())
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.Encode(m.Interface())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("depth %d: MarshalVT %x\nproto.Marshal %x", depth, got, want)
				}
				if depth > 0 && len(got) < 10 {
					t.Fatalf("the filled message encodes to %d bytes: fill set nothing", len(got))
				}
			}
		})
	}
	if fast == 0 {
		t.Fatal("no type takes MarshalVT")
	}
}

// FuzzMarshalVTMatchesProto: any message proto.Unmarshal accepts (unknown
// fields included) re-encodes to the same bytes through the Goka codec's
// MarshalVT as through the deterministic proto.Marshal.
func FuzzMarshalVTMatchesProto(f *testing.F) {
	types := wardstreamTypes()
	for i, mt := range types {
		m := mt.New()
		fill(m, 2)
		b, _ := proto.Marshal(m.Interface())
		f.Add(uint8(i), b)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		mt := types[int(which)%len(types)]
		c := NewGoka(func() proto.Message { return mt.New().Interface() })
		if !c.vt {
			return
		}
		m := mt.New().Interface()
		if proto.Unmarshal(data, m) != nil {
			return
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: MarshalVT %x\nproto.Marshal %x", mt.Descriptor().Name(), got, want)
		}
	})
}
