package layout_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/wardstream/wardstream/"

type pkg struct {
	ImportPath string
	Imports    []string
}

// component is the unit the rule talks about: "schemas", "internal",
// "connectors/mqtt", "pipelines/adherence", "sinks/clickhouse", "cmd", "bench".
func component(path string) string {
	rel := strings.TrimPrefix(path, module)
	parts := strings.Split(rel, "/")
	switch parts[0] {
	case "connectors", "sinks":
		// Each connector and sink is its own role; pipelines/ is one role
		// (processors) whose packages may share pure helpers.
		if len(parts) > 1 {
			return parts[0] + "/" + parts[1]
		}
	}
	return parts[0]
}

func layer(c string) string {
	if i := strings.IndexByte(c, '/'); i > 0 || c == "pipelines" {
		return "role"
	}
	return c
}

func allowed(from, to string) bool {
	if from == to {
		return true
	}
	lf, lt := layer(from), layer(to)
	switch {
	case lt == "cmd":
		return false
	case lt == "bench":
		return lf == "cmd" // main wires the bench command
	case lf == "schemas":
		return lt == "schemas"
	case lf == "internal":
		return lt == "schemas" || lt == "internal"
	case lf == "role":
		return lt == "schemas" || lt == "internal"
	}
	return true // cmd and bench sit on top
}

func TestDependencyRule(t *testing.T) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports", module+"...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		from := component(p.ImportPath)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if to := component(imp); !allowed(from, to) {
				t.Errorf("%s imports %s: %s may not depend on %s (STYLE.md dependency rule)", p.ImportPath, imp, from, to)
			}
		}
	}
	if n < 5 {
		t.Fatalf("go list found only %d packages", n)
	}
}

func TestRuleTable(t *testing.T) {
	cases := []struct {
		from, to string
		ok       bool
	}{
		{"schemas", "internal", false},
		{"internal", "schemas", true},
		{"connectors/mqtt", "internal", true},
		{"connectors/mqtt", "connectors/rtsp", false},
		{"pipelines", "connectors/mqtt", false},
		{"sinks/clickhouse", "pipelines", false},
		{"sinks/clickhouse", "schemas", true},
		{"cmd", "connectors/mqtt", true},
		{"bench", "sinks/clickhouse", true},
		{"connectors/mqtt", "bench", false},
		{"bench", "cmd", false},
		{"cmd", "bench", true},
	}
	for _, c := range cases {
		if got := allowed(c.from, c.to); got != c.ok {
			t.Errorf("allowed(%s,%s)=%v want %v", c.from, c.to, got, c.ok)
		}
	}
}
