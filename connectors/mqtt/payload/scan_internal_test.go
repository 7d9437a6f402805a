package payload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestScanStrWords holds scanStr's 8-bytes-at-a-time scan to the byte loop
// (strStop): every byte value at every position of strings around the word
// size, after runs of other plain and stop bytes.
func TestScanStrWords(t *testing.T) {
	byteLoop := func(d []byte) (int, bool) {
		i := 1
		for i < len(d) && !strStop[d[i]] {
			i++
		}
		return i, i < len(d) && d[i] == '"'
	}
	for n := 1; n <= 20; n++ {
		for pos := range n {
			for c := range 256 {
				for _, fill := range []byte{'a', '~', ' ', 0x7f} {
					d := make([]byte, 0, n+2)
					d = append(d, '"')
					for j := range n {
						if j == pos {
							d = append(d, byte(c))
						} else {
							d = append(d, fill)
						}
					}
					for _, tail := range [][]byte{nil, {'"'}, {'"', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'}} {
						dd := append(d[:len(d):len(d)], tail...)
						wantEnd, wantOK := byteLoop(dd)
						end, ok := scanStr(dd, 0)
						if ok != wantOK || ok && end != wantEnd {
							t.Fatalf("scanStr(%q) = %d, %v; the byte loop %d, %v", dd, end, ok, wantEnd, wantOK)
						}
					}
				}
			}
		}
	}
}

// TestFloatFastPath holds the scanner's short-number conversion to
// strconv.ParseFloat, bit for bit, on the forms devices send and on random
// decimals of up to 15 digits (and a few past the fast path's limits).
func TestFloatFastPath(t *testing.T) {
	cases := []string{"0", "-0", "0.0", "-0.0", "1", "36.8", "97.5", "0.1", "0.3", "-12.25", "999999999999999", "99999999999999.9",
		"0.000000000000001", "9007199254740993", "1234567890123456", "1e2", "1.5E-3", "123456789012345678901234567890", "4.9e-324", "1e400"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		digits := 1 + r.IntN(17)
		b := []byte{}
		if r.IntN(4) == 0 {
			b = append(b, '-')
		}
		b = append(b, byte('1'+r.IntN(9)))
		for range digits - 1 {
			b = append(b, byte('0'+r.IntN(10)))
		}
		if p := r.IntN(digits); p > 0 { // JSON: digits on both sides of a point
			b = append(b[:len(b)-p], append([]byte{'.'}, b[len(b)-p:]...)...)
		}
		cases = append(cases, string(b), "0."+string(b[len(b)-1:]))
	}
	for _, c := range cases {
		want, werr := strconv.ParseFloat(c, 64)
		s := scanner{d: []byte(c)}
		got, next, ok := floatAt(s.d, 0)
		s.i = next
		if ok != (werr == nil) || ok && math.Float64bits(got) != math.Float64bits(want) || ok && s.i != len(c) {
			t.Fatalf("%s: %v (%x), %v; ParseFloat %v (%x), %v", c, got, math.Float64bits(got), ok, want, math.Float64bits(want), werr)
		}
	}
}

// TestKeyGuesses: keyAt reads the same with a guess as without, and takes
// the guess exactly when the guessed key comes next, compact.
func TestKeyGuesses(t *testing.T) {
	names := append([]string{"", "Id", "heartrate", "spo", "heartRateX", "x"}, keyNames[:]...)
	var none [1]keyPattern // a fresh encoder's guesses
	if guess(none[:], 0).at([]byte(`,"heartRate":1,"zzzzzzzzzzzzzzzzzzzzzz":1`), 0) {
		t.Fatal("the zero pattern matched")
	}
	for id := range keyNames {
		for p := range 2 {
			var g [2]keyPattern
			remember(g[:], p, id)
			if g[p].n == 0 {
				t.Fatalf("no pattern for %s", keyNames[id])
			}
			for _, name := range names {
				for _, form := range []string{`,"%s":1`, `"%s":1`, `, "%s":1`, `,"%s" :1`, `,"%s": 1`, `,"%s"`, `}`, `,"%s\u0041":1`, `,"%sBp":1`} {
					d := []byte(fmt.Sprintf(form, name) + `,"zzzzzzzzzzzzzzzzzzzzzzzzzzzz":2}`)
					k0, next0, done0, ok0 := keyAt(d, 0, p == 0)
					var k []byte
					var next int
					done, ok := false, true
					kp := guess(g[:], p)
					guessed := kp.at(d, 0)
					if guessed {
						end := kp.n - 2
						k, next = d[end-kp.keyLen:end], skipWS(d, kp.n)
					} else {
						k, next, done, ok = keyAt(d, 0, p == 0)
					}
					if string(k) != string(k0) || next != next0 || done != done0 || ok != ok0 {
						t.Fatalf("%q, guess %s at %d: %q %d %v %v; without the guess %q %d %v %v", d, keyNames[id], p, k, next, done, ok, k0, next0, done0, ok0)
					}
					// Compact up to the colon (whitespace after it is skipped).
					compact := (form == `,"%s":1` || form == `,"%s": 1` || form == `,"%sBp":1`) && p > 0 || form == `"%s":1` && p == 0
					if want := compact && ok0 && !done0 && string(k0) == keyNames[id]; guessed != want {
						t.Errorf("%q, guess %s at %d: guessed %v, want %v", d, keyNames[id], p, guessed, want)
					}
				}
			}
		}
	}
}
