// Package codec provides the wire codecs for wardstream records: protobuf for
// Kafka values (including goka codecs) and JSON for humans and tools.
//
// Device payloads (the seed's JSON over MQTT) are decoded by the MQTT
// connector, not here: this package only knows wardstream's own records.
package codec

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Goka is a goka.Codec (Encode/Decode on interface{} values) for one
// protobuf message type T. It is safe for concurrent use.
//
// Encode uses the MarshalVT that vtprotobuf generates next to the message
// (schemas/proto/wardstreamv1/*_vtproto.pb.go) for types without map
// fields: the same bytes as the deterministic proto.Marshal (fields in
// number order, unknown fields last; FuzzMarshalVTMatchesProto holds every
// message type to it), at a fraction of the cost. Encoding the processors'
// outputs was an eighth of that role's CPU in the fleet bench. Map fields
// are left to proto.Marshal, whose deterministic option sorts their keys.
// Two differences remain. MarshalVT does not check that strings are
// UTF-8: the processors only emit strings taken from decoded (so checked)
// input; a record that still had a bad string would be refused by the
// sink's decoder and dead-lettered there with its reason. And it leaves
// out a float or double field holding -0.0, which proto.Marshal writes
// (its bits are not zero): the value reads back as +0. No wardstream value
// tells -0 from 0, and every producer of a record type uses this codec, so
// equal records still have equal bytes (TestGokaNegativeZero pins this).
type Goka[T proto.Message] struct {
	newT func() T
	vt   bool
}

// NewGoka returns a goka codec for T; newT returns an empty message.
func NewGoka[T proto.Message](newT func() T) *Goka[T] {
	m := newT()
	_, isVT := any(m).(vtMarshaler)
	return &Goka[T]{newT: newT, vt: isVT && !hasMap(m.ProtoReflect().Descriptor(), map[protoreflect.FullName]bool{})}
}

// vtMarshaler is a message with vtprotobuf's generated marshaller.
type vtMarshaler interface{ MarshalVT() ([]byte, error) }

// hasMap reports whether messages of d can hold a map field.
func hasMap(d protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[d.FullName()] {
		return false
	}
	seen[d.FullName()] = true
	fs := d.Fields()
	for i := range fs.Len() {
		f := fs.Get(i)
		if f.IsMap() {
			return true
		}
		if f.Message() != nil && hasMap(f.Message(), seen) {
			return true
		}
	}
	return false
}

// Encode marshals a T (or *T pointer message) deterministically.
func (c *Goka[T]) Encode(value any) ([]byte, error) {
	m, ok := value.(T)
	if !ok {
		return nil, fmt.Errorf("encoding %T: want %T", value, c.newT())
	}
	if c.vt {
		b, err := any(m).(vtMarshaler).MarshalVT()
		if err != nil {
			return nil, fmt.Errorf("encoding %T: %w", m, err)
		}
		return b, nil
	}
	return Marshal(m)
}

// Decode unmarshals data into a new T.
func (c *Goka[T]) Decode(data []byte) (any, error) {
	m := c.newT()
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("decoding %T (%d bytes): %w", m, len(data), err)
	}
	return m, nil
}

// Marshal encodes m deterministically (stable bytes for equal messages, so
// idempotent producers and dedup by content work).
func Marshal(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", m, err)
	}
	return b, nil
}

// Unmarshal decodes data into m.
func Unmarshal(data []byte, m proto.Message) error {
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("decoding %T (%d bytes): %w", m, len(data), err)
	}
	return nil
}

var jsonOut = protojson.MarshalOptions{UseEnumNumbers: false}
var jsonIn = protojson.UnmarshalOptions{DiscardUnknown: false}

// JSON renders m as one line of JSON with lowerCamelCase field names
// (deviceId, patientId, ...). Unset fields are omitted.
func JSON(m proto.Message) ([]byte, error) {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rendering %T as JSON: %w", m, err)
	}
	return b, nil
}

// FromJSON parses wardstream's JSON form of a record into m. Unknown fields
// are errors.
func FromJSON(data []byte, m proto.Message) error {
	if err := jsonIn.Unmarshal(data, m); err != nil {
		return fmt.Errorf("parsing %T from JSON: %w", m, err)
	}
	return nil
}
