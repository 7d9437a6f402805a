package payload

import "encoding/json"

// FastDecodeResult exposes body to the external tests.
type FastDecodeResult = body

// FastDecode runs the fast path.
func FastDecode(raw []byte, b *body) bool { return fastBody(raw, b) }

// RefDecode runs the reference decoder.
func RefDecode(raw []byte, b *body) bool { return json.Unmarshal(raw, b) == nil }

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
