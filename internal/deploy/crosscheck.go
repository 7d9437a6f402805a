package deploy

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/schemas/topics"
)

// RoleSections are the top-level sections [CrossCheck] searches for
// references, as dotted paths.
var RoleSections = []string{"connectors", "pipelines", "sinks", "api", "bench", "scaling"}

// CameraListPath is where the topology declares cameras: a sequence of
// mappings, each named by "id" (or "name" when it has no id).
const CameraListPath = "connectors.rtsp.cameras"

// CrossCheck finds references in doc (a parsed topology document) that
// point at nothing. It works on the YAML tree, not on role Config types, so
// it also covers sections whose role is not part of the build. The rules:
//
//   - tenant ids in tenants[] are unique, each tenant's wards are unique, and
//     the default tenant (root "tenant") is one of them when tenants[] is
//     not empty;
//   - in the role sections ([RoleSections]), every "tenant" value and every
//     item of a "tenants" list names a declared tenant (when tenants[] is
//     empty, only the default tenant is declared);
//   - every "ward" value and "wards" item names a ward of the tenant in
//     scope: the "tenant" of the same mapping or the nearest enclosing one,
//     else the default tenant; tenants that list no wards accept any ward;
//   - cameras under [CameraListPath] have unique ids, and every "camera" or
//     "camera_id" value and "cameras" list of names elsewhere names one;
//   - every "topic", "kafka_topic" or "topics" value that starts with
//     "wardstream." names a topic of the catalog (schemas/topics).
func CrossCheck(doc *yaml.Node) []Problem {
	root := doc
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root == nil || root.Kind != yaml.MappingNode {
		return nil
	}
	c := &checker{tenants: map[string]map[string]bool{}}
	c.collectTenants(root)
	c.collectCameras(root)
	for _, s := range RoleSections {
		if n := child(root, s); n != nil {
			c.walk(n, s, "")
		}
	}
	SortProblems(c.problems)
	return c.problems
}

type checker struct {
	problems      []Problem
	defaultTenant string
	tenants       map[string]map[string]bool // id -> wards (empty: any)
	tenantOrder   []string
	cameras       map[string]bool // nil when no camera list exists
}

func (c *checker) add(n *yaml.Node, path, format string, a ...any) {
	c.problems = append(c.problems, Problem{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, a...)})
}

func child(m *yaml.Node, key string) *yaml.Node {
	for _, k := range strings.Split(key, ".") {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == k {
				next = m.Content[i+1]
				break
			}
		}
		m = next
	}
	return m
}

func (c *checker) collectTenants(root *yaml.Node) {
	if t := child(root, "tenant"); t != nil && t.Kind == yaml.ScalarNode {
		c.defaultTenant = t.Value
	} else {
		c.defaultTenant = "default"
	}
	list := child(root, "tenants")
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		c.tenants[c.defaultTenant] = map[string]bool{}
		c.tenantOrder = []string{c.defaultTenant}
		return
	}
	for i, t := range list.Content {
		id := child(t, "id")
		if id == nil || id.Kind != yaml.ScalarNode || id.Value == "" {
			continue // internal/config reports the empty id
		}
		p := fmt.Sprintf("tenants[%d].id", i)
		if _, dup := c.tenants[id.Value]; dup {
			c.add(id, p, "tenant %q is declared twice", id.Value)
			continue
		}
		wards := map[string]bool{}
		if ws := child(t, "wards"); ws != nil && ws.Kind == yaml.SequenceNode {
			for j, w := range ws.Content {
				if wards[w.Value] {
					c.add(w, fmt.Sprintf("tenants[%d].wards[%d]", i, j), "ward %q is listed twice for tenant %q", w.Value, id.Value)
				}
				wards[w.Value] = true
			}
		}
		c.tenants[id.Value] = wards
		c.tenantOrder = append(c.tenantOrder, id.Value)
	}
	if _, ok := c.tenants[c.defaultTenant]; !ok {
		if t := child(root, "tenant"); t != nil {
			c.add(t, "tenant", "default tenant %q is not in tenants (declared: %s)", c.defaultTenant, strings.Join(c.tenantOrder, ", "))
		}
	}
}

func (c *checker) collectCameras(root *yaml.Node) {
	list := child(root, CameraListPath)
	if list == nil || list.Kind != yaml.SequenceNode {
		return
	}
	c.cameras = map[string]bool{}
	for i, cam := range list.Content {
		key := "id"
		id := child(cam, "id")
		if id == nil {
			key, id = "name", child(cam, "name")
		}
		if id == nil || id.Kind != yaml.ScalarNode || id.Value == "" {
			continue // the rtsp role's Validate reports a missing id
		}
		if c.cameras[id.Value] {
			c.add(id, fmt.Sprintf("%s[%d].%s", CameraListPath, i, key), "camera %q is declared twice", id.Value)
		}
		c.cameras[id.Value] = true
	}
}

// walk visits n at path; tenant is the tenant in scope ("" = default).
func (c *checker) walk(n *yaml.Node, path, tenant string) {
	switch n.Kind {
	case yaml.SequenceNode:
		for i, it := range n.Content {
			c.walk(it, fmt.Sprintf("%s[%d]", path, i), tenant)
		}
	case yaml.MappingNode:
		if t := child(n, "tenant"); t != nil && t.Kind == yaml.ScalarNode && t.Value != "" {
			tenant = t.Value
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + "." + k.Value
			if strings.ContainsAny(k.Value, ".[]") {
				p = fmt.Sprintf("%s[%q]", path, k.Value)
			}
			c.checkRef(k.Value, v, p, path, tenant)
			c.walk(v, p, tenant)
		}
	}
}

func scalars(v *yaml.Node) []*yaml.Node {
	switch v.Kind {
	case yaml.ScalarNode:
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return nil // a list of objects is a declaration, not references
			}
			out = append(out, it)
		}
		return out
	}
	return nil
}

func itemPath(p string, v *yaml.Node, i int) string {
	if v.Kind == yaml.SequenceNode {
		return fmt.Sprintf("%s[%d]", p, i)
	}
	return p
}

func (c *checker) checkRef(key string, v *yaml.Node, p, parent, tenant string) {
	switch key {
	case "tenant", "tenants":
		if key == "tenant" && v.Kind != yaml.ScalarNode {
			return
		}
		for i, s := range scalars(v) {
			if _, ok := c.tenants[s.Value]; !ok && s.Value != "" {
				c.add(s, itemPath(p, v, i), "tenant %q is not declared in tenants (declared: %s)", s.Value, strings.Join(c.tenantOrder, ", "))
			}
		}
	case "ward", "wards":
		if tenant == "" {
			tenant = c.defaultTenant
		}
		wards, ok := c.tenants[tenant]
		if !ok || len(wards) == 0 {
			return // unknown tenant is reported on its own; no ward list accepts any ward
		}
		for i, s := range scalars(v) {
			if !wards[s.Value] {
				c.add(s, itemPath(p, v, i), "ward %q is not a ward of tenant %q (wards: %s)", s.Value, tenant, strings.Join(sortedKeys(wards), ", "))
			}
		}
	case "camera", "camera_id", "cameras":
		if parent+"."+key == CameraListPath {
			return
		}
		for i, s := range scalars(v) {
			if s.Value == "" {
				continue
			}
			if c.cameras == nil {
				c.add(s, itemPath(p, v, i), "camera %q is referenced but %s declares no cameras", s.Value, CameraListPath)
			} else if !c.cameras[s.Value] {
				c.add(s, itemPath(p, v, i), "camera %q is not declared in %s (declared: %s)", s.Value, CameraListPath, strings.Join(sortedKeys(c.cameras), ", "))
			}
		}
	case "topic", "kafka_topic", "topics", "output_topic", "input_topic":
		for i, s := range scalars(v) {
			if strings.HasPrefix(s.Value, "wardstream.") {
				if _, ok := topics.Lookup(s.Value); !ok {
					c.add(s, itemPath(p, v, i), "%q is not a topic of the catalog (see wardstream topics list)", s.Value)
				}
			}
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
