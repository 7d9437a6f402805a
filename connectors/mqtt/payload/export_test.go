package payload

import (
	"encoding/json"
	"reflect"
)

// FastDecodeResult exposes body to the external tests.
type FastDecodeResult = body

// FastDecode runs the fast path.
func FastDecode(raw []byte, b *body) bool { return fastBody(raw, b) }

// RefDecode runs the reference decoder.
func RefDecode(raw []byte, b *body) bool { return json.Unmarshal(raw, b) == nil }

// FastValuesAgrees runs the fast path of a nested data object and reports
// whether it accepted raw, and if so, the disagreement with encoding/json
// ("" if none).
func FastValuesAgrees(raw []byte) (bool, string) {
	var fast, ref values
	if !fastValues(raw, &fast) {
		return false, ""
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		return true, "encoding/json rejects it: " + err.Error()
	}
	if !reflect.DeepEqual(fast, ref) {
		return true, "the values differ"
	}
	return true, ""
}

// FastBatch reports whether the fast path takes a batch envelope and all its messages.
func FastBatch(raw []byte) bool {
	var bb batchBody
	if !fastBatch(raw, &bb) {
		return false
	}
	for _, m := range bb.Messages {
		var b body
		if !fastBody(m, &b) {
			return false
		}
	}
	return true
}

// FastBatchAgrees runs the fast batch path and reports whether it accepted
// raw, and if so, the first disagreement with encoding/json ("" if none).
func FastBatchAgrees(raw []byte) (bool, string) {
	var bb batchBody
	if !fastBatch(raw, &bb) {
		return false, ""
	}
	var ref batchBody
	if err := json.Unmarshal(raw, &ref); err != nil {
		return true, "encoding/json rejects the envelope: " + err.Error()
	}
	if ref.BatchID != bb.BatchID || (ref.DeviceID == nil) != (bb.DeviceID == nil) || (ref.DeviceID != nil && *ref.DeviceID != *bb.DeviceID) ||
		(ref.Count == nil) != (bb.Count == nil) || (ref.Count != nil && *ref.Count != *bb.Count) || ref.Tenant != bb.Tenant {
		return true, "envelope fields differ"
	}
	if len(ref.Messages) != len(bb.Messages) || len(bb.bodies) != len(bb.Messages) {
		return true, "message counts differ"
	}
	for i, m := range bb.Messages {
		if string(m) != string(ref.Messages[i]) {
			return true, "raw message differs"
		}
		if bb.bodies[i] == nil {
			continue
		}
		var b body
		if err := json.Unmarshal(m, &b); err != nil {
			return true, "encoding/json rejects a message the fast path decoded: " + err.Error()
		}
		if !reflect.DeepEqual(b, *bb.bodies[i]) {
			return true, "a decoded message differs"
		}
	}
	return true, ""
}

// GeneralPath makes Decode skip the batch encoder (the reference).
func GeneralPath(o Options) Options {
	o.noBatchEncoder = true
	return o
}

// EncodeVitalsBatch runs the batch encoder alone.
func EncodeVitalsBatch(src Source, raw []byte, o Options) (Out, bool) {
	return encodeVitalsBatch(src, raw, o)
}
