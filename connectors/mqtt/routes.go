package mqtt

import (
	"fmt"
	"strings"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
)

// template is a parsed topic template: literal levels and placeholders.
type template struct {
	raw    string
	levels []string // literal, or "{name}"
}

var placeholders = map[string]bool{"{tenant}": true, "{deviceType}": true, "{deviceId}": true, "{kind}": true}

// kinds are the telemetry kinds a {kind} level accepts.
var kinds = map[string]bool{"vitals": true, "readings": true, "alerts": true, "status": true}

func parseTemplate(s string) (template, error) {
	if s == "" {
		return template{}, fmt.Errorf("topic template is empty")
	}
	t := template{raw: s, levels: strings.Split(s, "/")}
	seen := map[string]bool{}
	for _, l := range t.levels {
		switch {
		case strings.HasPrefix(l, "{"):
			if !placeholders[l] {
				return template{}, fmt.Errorf("topic template %q: %s is not {tenant}, {deviceType}, {deviceId} or {kind}", s, l)
			}
			if seen[l] {
				return template{}, fmt.Errorf("topic template %q repeats %s", s, l)
			}
			seen[l] = true
		case l == "" || strings.ContainsAny(l, "+#{}"):
			return template{}, fmt.Errorf("topic template %q: level %q must be a non-empty literal without + # { }", s, l)
		}
	}
	return t, nil
}

func (t template) has(name string) bool {
	for _, l := range t.levels {
		if l == "{"+name+"}" {
			return true
		}
	}
	return false
}

// filter is the subscription filter: placeholders become "+".
func (t template) filter() string {
	out := make([]string, len(t.levels))
	for i, l := range t.levels {
		if strings.HasPrefix(l, "{") {
			out[i] = "+"
		} else {
			out[i] = l
		}
	}
	return strings.Join(out, "/")
}

// expand fills {deviceId} (the only placeholder outbound topics use).
func (t template) expand(deviceID string) string {
	return strings.ReplaceAll(t.raw, "{deviceId}", deviceID)
}

// match reports whether topic fits t and fills src from it.
func (t template) match(topic string, src *payload.Source) bool {
	n := 0
	rest := topic
	for i, l := range t.levels {
		var lv string
		if i == len(t.levels)-1 {
			lv = rest
			if strings.IndexByte(rest, '/') >= 0 {
				return false
			}
		} else {
			j := strings.IndexByte(rest, '/')
			if j < 0 {
				return false
			}
			lv, rest = rest[:j], rest[j+1:]
		}
		n++
		switch l {
		case "{tenant}":
			src.Tenant = lv
		case "{deviceType}":
			src.DeviceType = lv
		case "{deviceId}":
			src.DeviceID = lv
		case "{kind}":
			if !kinds[lv] {
				return false
			}
			src.Kind = lv
		default:
			if l != lv {
				return false
			}
		}
		if lv == "" {
			return false
		}
	}
	return n == len(t.levels)
}

// route is a compiled Route. ignore marks the connector's own outbound
// topics, which the subscriptions may cover.
type route struct {
	tmpl   template
	typ    string
	ignore bool
}

// router resolves MQTT topics to routes.
type router struct {
	routes  []route
	filters []string
}

func newRouter(cfg Config) (*router, error) {
	r := &router{}
	// Our own outbound topics first: a broad telemetry filter may cover
	// them, and they are not device input.
	for _, s := range []string{cfg.Commands.Topic, cfg.Shadow.DeltaTopic} {
		t, err := parseTemplate(s)
		if err != nil {
			return nil, err
		}
		r.routes = append(r.routes, route{tmpl: t, ignore: true})
	}
	// Then the devices' command acks (commands.ack_topic), whatever the
	// routes say.
	ack, err := parseTemplate(cfg.Commands.AckTopic)
	if err != nil {
		return nil, err
	}
	r.routes = append(r.routes, route{tmpl: ack, typ: TypeCommandAck})
	filters := []string{ack.filter()}
	for _, rt := range cfg.Routes {
		t, err := parseTemplate(rt.Topic)
		if err != nil {
			return nil, err
		}
		r.routes = append(r.routes, route{tmpl: t, typ: rt.Type})
		filters = append(filters, t.filter())
	}
	// Overlapping subscriptions make the broker deliver a message once per
	// matching subscription; keep only filters no other filter covers.
	for i, f := range filters {
		covered := false
		for j, g := range filters {
			if i != j && covers(g, f) && (f != g || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			r.filters = append(r.filters, f)
		}
	}
	return r, nil
}

// covers reports whether filter g matches every topic filter f matches
// (both use only "+" wildcards).
func covers(g, f string) bool {
	gl, fl := strings.Split(g, "/"), strings.Split(f, "/")
	if len(gl) != len(fl) {
		return false
	}
	for i := range gl {
		if gl[i] != "+" && gl[i] != fl[i] {
			return false
		}
	}
	return true
}

// match returns the first route topic fits, with what the topic says.
func (r *router) match(topic string) (route, payload.Source, bool) {
	for _, rt := range r.routes {
		src := payload.Source{Topic: topic}
		if rt.tmpl.match(topic, &src) {
			return rt, src, true
		}
	}
	return route{}, payload.Source{Topic: topic}, false
}
