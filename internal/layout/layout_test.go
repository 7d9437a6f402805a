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
	ImportPath   string
	Imports      []string
	TestImports  []string // the package's in-package _test.go files
	XTestImports []string // its package foo_test files
}

// testutil is the shared test-helper tree: the integration gate, the local
// services' addresses, chdb.
const testutil = module + "internal/testutil"

func isTestutil(path string) bool {
	return path == testutil || strings.HasPrefix(path, testutil+"/")
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

// allowedImport applies the rule to one import of package from (a full
// import path); test says whether the import is made by the package's
// tests (TestImports or XTestImports) rather than the package itself.
//
// Tests follow the same rule as the code they test, with one exception:
// a test in any layer may import internal/testutil and its subpackages.
// They are test helpers (the WARDSTREAM_IT gate, the local services'
// addresses, a chDB session for schemas/clickhouse's migrations), not a
// dependency of the shipped code, and schemas' tests need them as much as
// anyone's. So that the exception brings nothing else of wardstream along,
// internal/testutil/... itself is a leaf: its own (non-test) imports stay
// inside internal/testutil.
func allowedImport(from, to string, test bool) bool {
	if isTestutil(from) && !test && !isTestutil(to) {
		return false
	}
	if test && isTestutil(to) {
		return true
	}
	return allowed(component(from), component(to))
}

func TestDependencyRule(t *testing.T) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", module+"...")
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
		for _, set := range []struct {
			imports []string
			test    bool
			what    string
		}{{p.Imports, false, "imports"}, {p.TestImports, true, "test imports"}, {p.XTestImports, true, "external test imports"}} {
			for _, imp := range set.imports {
				if !strings.HasPrefix(imp, module) {
					continue
				}
				if allowedImport(p.ImportPath, imp, set.test) {
					continue
				}
				if isTestutil(p.ImportPath) && !set.test {
					t.Errorf("%s imports %s: internal/testutil/... may import only internal/testutil/..., since any layer's tests may import it", p.ImportPath, imp)
				} else {
					t.Errorf("%s %s %s: %s may not depend on %s (STYLE.md dependency rule)",
						p.ImportPath, set.what, imp, component(p.ImportPath), component(imp))
				}
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

	// Imports by package path, from the package's code or its tests.
	imports := []struct {
		from, to string
		test     bool
		ok       bool
	}{
		// The test-helper exception: test imports only, of
		// internal/testutil and its subpackages only.
		{"schemas/clickhouse", "internal/testutil", true, true},
		{"schemas/clickhouse", "internal/testutil/chdb", true, true},
		{"schemas/clickhouse", "internal/testutil", false, false},
		{"schemas/clickhouse", "internal/testutil/chdb", false, false},
		{"schemas/clickhouse", "internal/testutilx", true, false},
		{"schemas/clickhouse", "internal/config", true, false},
		{"internal/kafka", "internal/testutil", true, true},
		{"sinks/clickhouse", "internal/testutil", true, true},
		// internal/testutil/... is a leaf.
		{"internal/testutil/chdb", "internal/testutil", false, true},
		{"internal/testutil", "schemas/topics", false, false},
		{"internal/testutil/chdb", "internal/config", false, false},
		{"internal/testutil/chdb", "internal/config", true, true},
		// Otherwise tests follow the rule of the code they test.
		{"connectors/api", "pipelines/schedule", true, false},
		{"connectors/rtsp", "pipelines/correlation", true, false},
		{"connectors/rtsp", "sinks/clickhouse", true, false},
		{"connectors/rtsp", "connectors/rtsp/rtsptest", true, true},
		{"schemas/clickhouse", "sinks/clickhouse", true, false},
		{"cmd/wardstream", "pipelines/schedule", true, true},
		{"cmd/wardstream", "sinks/clickhouse", true, true},
		{"cmd/wardstream", "connectors/rtsp/rtsptest", true, true},
		{"pipelines/correlation", "cmd/wardstream", true, false},
		{"bench", "cmd/wardstream", true, false},
	}
	for _, c := range imports {
		if got := allowedImport(module+c.from, module+c.to, c.test); got != c.ok {
			t.Errorf("allowedImport(%s,%s,test=%v)=%v want %v", c.from, c.to, c.test, got, c.ok)
		}
	}
}
