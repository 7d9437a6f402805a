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
)

// Goka is a goka.Codec (Encode/Decode on interface{} values) for one
// protobuf message type T. It is safe for concurrent use.
type Goka[T proto.Message] struct {
	newT func() T
}

// NewGoka returns a goka codec for T; newT returns an empty message.
func NewGoka[T proto.Message](newT func() T) *Goka[T] { return &Goka[T]{newT: newT} }

// Encode marshals a T (or *T pointer message) deterministically.
func (c *Goka[T]) Encode(value any) ([]byte, error) {
	m, ok := value.(T)
	if !ok {
		return nil, fmt.Errorf("encoding %T: want %T", value, c.newT())
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
