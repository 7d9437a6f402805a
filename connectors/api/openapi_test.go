package api_test

import (
	"os"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type specOp struct {
	OperationID string                    `yaml:"operationId"`
	Security    *[]map[string][]string    `yaml:"security"`
	Responses   map[string]map[string]any `yaml:"responses"`
	Parameters  []map[string]any          `yaml:"parameters"`
}

// TestOpenAPIMatchesRoutes keeps openapi.yaml and the router in step: every
// route is described (same operationId, public iff security is empty,
// 401/403/429 documented on protected routes, every path parameter
// declared) and every described operation is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", spec.OpenAPI)
	}
	described := map[string]specOp{}
	pathParams := map[string][]map[string]any{}
	for path, item := range spec.Paths {
		for key, v := range item {
			raw, _ := yaml.Marshal(v)
			if key == "parameters" {
				var ps []map[string]any
				_ = yaml.Unmarshal(raw, &ps)
				pathParams[path] = ps
				continue
			}
			var op specOp
			if err := yaml.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			described[strings.ToUpper(key)+" "+path] = op
		}
	}
	h := newHarness(t, nil)
	routed := map[string]bool{}
	for _, r := range h.srv.Routes() {
		path := r.Path
		if path == "/{$}" {
			path = "/"
		}
		key := r.Method + " " + path
		routed[key] = true
		op, ok := described[key]
		if !ok {
			t.Errorf("route %s (%s) is not in openapi.yaml", key, r.Name)
			continue
		}
		if op.OperationID != r.Name {
			t.Errorf("%s: operationId %q, route name %q", key, op.OperationID, r.Name)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != (len(r.Roles) == 0) {
			t.Errorf("%s: spec public=%v, route roles %v", key, public, r.Roles)
		}
		if !public {
			for _, code := range []string{"401", "403", "429"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s: response %s not documented", key, code)
				}
			}
		}
		if r.Write {
			if _, ok := op.Responses["400"]; !ok {
				t.Errorf("%s: write without a documented 400", key)
			}
		}
		// Every {param} in the path is declared as a path parameter.
		declared := map[string]bool{}
		for _, p := range append(append([]map[string]any{}, pathParams[path]...), op.Parameters...) {
			if ref, ok := p["$ref"].(string); ok {
				declared[ref[strings.LastIndex(ref, "/")+1:]] = true
			}
			if n, ok := p["name"].(string); ok && p["in"] == "path" {
				declared[n] = true
			}
		}
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, "{") {
				name := strings.Trim(seg, "{}")
				if !declared[name] {
					t.Errorf("%s: path parameter %s not declared", key, name)
				}
			}
		}
	}
	var extra []string
	for key := range described {
		if !routed[key] {
			extra = append(extra, key)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		t.Errorf("openapi.yaml describes %s, which is not routed", k)
	}
}
