package config_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/internal/config"
)

// TestSectionLineNumbersAfterBlankLine: Section shifts the line
// numbers of the re-marshalled section by the section's first line, but
// yaml.Marshal drops blank lines (and reflows flow mappings), so an
// unknown key after a blank line is reported at the wrong line.
func TestSectionLineNumbersAfterBlankLine(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"tenant: t\nsinks:\n  clickhouse:\n    a: 1\n\n\n    bogus: 2\n", "line 7: unknown field bogus"},
		{"tenant: t\nsinks:\n  clickhouse: {a: 1,\n    bogus: 2}\n", "line 4: unknown field bogus"},
	} {
		r, err := config.Parse([]byte(c.doc))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			A int `yaml:"a"`
		}
		err = config.Section(&r.Sinks.ClickHouse, "sinks.clickhouse", &out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.doc, err, c.want)
		}
	}
}

// TestBadDurationHidesOtherProblems: Parse reports an invalid
// duration, but Duration.UnmarshalYAML's plain error aborts decoding, so
// the unknown key and the invalid field after it are not reported in the
// same run; the duration error also lacks its dotted path.
func TestBadDurationHidesOtherProblems(t *testing.T) {
	_, err := config.Parse([]byte("kafka:\n  linger: 5\n  bogus: 1\n  compression: rar\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"kafka.linger", "unknown field bogus"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestSASLIsValidated: the kafka.sasl section is not checked by
// Validate (nor by `wardstream validate`): an unknown mechanism, or SASL
// with no password_env, loads fine and only fails (or, for franz-go,
// silently authenticates with an empty password) when a role starts.
func TestSASLIsValidated(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"kafka:\n  sasl: {mechanism: FOO, username: u, password_env: P}\n", "kafka.sasl.mechanism"},
		{"kafka:\n  sasl: {mechanism: PLAIN, username: u}\n", "kafka.sasl.password_env"},
	} {
		_, err := config.Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one naming %s", c.doc, err, c.want)
		}
	}
}
