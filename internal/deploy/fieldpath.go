// Package deploy provides the Go parts of wardstream's deployment tooling:
// locating a topology field by its dotted path so that validation problems
// carry file line numbers ([Locate], [Problems]), cross-reference checks
// between topology sections ([CrossCheck]), the scaling-hints section
// ([Scaling]), and Strimzi KafkaTopic manifests generated from the topic
// catalog ([KafkaTopics]).
//
// It does not deploy anything itself: compose files, Kustomize trees and the
// Dockerfile live in deploy/ as plain files, and the checks that parse them
// (compose-go, kustomize, Kubernetes types) live in the test-only package
// internal/deploy/manifests so that their heavy dependencies never reach
// the wardstream binary.
package deploy

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Locate returns the line of the node at path in doc, a parsed YAML
// document. path is dotted with indexes, as wardstream's validation errors
// write it: "kafka.brokers[1]", "connectors.rtsp.cameras[2].tenant",
// `connectors.mqtt.mappings["medical/+/status"]`. When the path does not
// exist in full (a required field is missing), Locate returns the line of
// the deepest node it found and exact=false; line 0 means not even the
// first segment exists. For a mapping key the key's line is returned.
func Locate(doc *yaml.Node, path string) (line int, exact bool) {
	n := doc
	if n == nil {
		return 0, false
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	segs, ok := splitPath(path)
	if !ok {
		return 0, false
	}
	for _, s := range segs {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch {
		case s.index >= 0:
			if n.Kind != yaml.SequenceNode || s.index >= len(n.Content) {
				return line, false
			}
			n = n.Content[s.index]
			line = n.Line
		default:
			if n.Kind != yaml.MappingNode {
				return line, false
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s.key {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line, false
			}
		}
	}
	return line, true
}

type segment struct {
	key   string
	index int // -1 for a key
}

// splitPath parses "a.b[2].c" and `a["x.y"].b` into segments.
func splitPath(p string) ([]segment, bool) {
	var out []segment
	for len(p) > 0 {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return nil, false
			}
			inner := p[1:end]
			if len(inner) >= 2 && (inner[0] == '"' || inner[0] == '\'') {
				// A quoted key may itself hold ']': find the closing quote.
				q := inner[0]
				close := strings.IndexByte(p[2:], q)
				if close < 0 || 2+close+1 >= len(p) || p[2+close+1] != ']' {
					return nil, false
				}
				key := p[2 : 2+close]
				if q == '"' {
					if uq, err := strconv.Unquote(`"` + key + `"`); err == nil {
						key = uq
					}
				}
				out = append(out, segment{key: key, index: -1})
				p = p[2+close+2:]
				continue
			}
			if i, err := strconv.Atoi(inner); err == nil && i >= 0 {
				out = append(out, segment{index: i})
			} else {
				out = append(out, segment{key: inner, index: -1})
			}
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, segment{key: p[:end], index: -1})
			p = p[end:]
		}
	}
	return out, len(out) > 0
}

// Problem is one validation finding, tied to a file line when known.
type Problem struct {
	// Line is the 1-based line in the topology file; 0 when unknown.
	Line int
	// Path is the dotted field path ("kafka.brokers[0]"); "" when the
	// underlying error named only a line.
	Path string
	// Msg says what is wrong.
	Msg string
}

// String formats the problem as "line N: path: msg".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

var (
	linePrefix     = regexp.MustCompile(`^line (\d+): (.*)$`)
	pathLinePrefix = regexp.MustCompile(`^([A-Za-z_][\w.\[\]"'/+#-]*): line (\d+): (.*)$`)
	pathPrefix     = regexp.MustCompile(`^([A-Za-z_][\w.\-]*(?:\[[^\]]*\][\w.\-]*)*): (.*)$`)
	// yaml.v3 and internal/config join several decode errors with "; "
	// before each "line N:".
	joinedLines = regexp.MustCompile(`; (line \d+: )`)
)

// Problems splits err (possibly joined, possibly several yaml errors in
// one) into problems and ties each to a line of doc: a message that already
// names a line keeps it, one that starts with a field path is located with
// [Locate]. prefix, when not empty, is prepended to paths that do not
// already start with it (a role whose Validate reports paths relative to
// its section). The result is sorted by line, then path.
func Problems(err error, doc *yaml.Node, prefix string) []Problem {
	if err == nil {
		return nil
	}
	var msgs []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		for _, m := range strings.Split(e.Error(), "\n") {
			m = joinedLines.ReplaceAllString(m, "\n$1")
			msgs = append(msgs, strings.Split(m, "\n")...)
		}
	}
	walk(err)
	var out []Problem
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		out = append(out, parseProblem(m, doc, prefix))
	}
	SortProblems(out)
	return out
}

func parseProblem(m string, doc *yaml.Node, prefix string) Problem {
	withPrefix := func(p string) string {
		if prefix == "" || p == prefix || strings.HasPrefix(p, prefix+".") || strings.HasPrefix(p, prefix+"[") {
			return p
		}
		return prefix + "." + p
	}
	if s := pathLinePrefix.FindStringSubmatch(m); s != nil {
		l, _ := strconv.Atoi(s[2])
		return Problem{Line: l, Path: withPrefix(s[1]), Msg: s[3]}
	}
	if s := linePrefix.FindStringSubmatch(m); s != nil {
		l, _ := strconv.Atoi(s[1])
		return Problem{Line: l, Path: prefix, Msg: s[2]}
	}
	if s := pathPrefix.FindStringSubmatch(m); s != nil {
		p, msg := withPrefix(s[1]), s[2]
		// A role may wrap its field errors in its section's name
		// ("connectors.rtsp: cameras[0].url: ..."): join the paths while
		// the document has them.
		for {
			sub := pathPrefix.FindStringSubmatch(msg)
			if sub == nil {
				break
			}
			joined := p + "." + sub[1]
			if strings.HasPrefix(sub[1], "[") {
				joined = p + sub[1]
			}
			// Join when the document has the path, or at least more of
			// it than of p (a required field that is missing).
			jl, exact := Locate(doc, joined)
			if pl, _ := Locate(doc, p); !exact && jl == pl {
				break
			}
			p, msg = joined, sub[2]
		}
		l, _ := Locate(doc, p)
		return Problem{Line: l, Path: p, Msg: msg}
	}
	l := 0
	if prefix != "" {
		l, _ = Locate(doc, prefix)
	}
	return Problem{Line: l, Path: prefix, Msg: m}
}

// SortProblems orders problems by line, then path, then message; problems
// without a line come last.
func SortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Msg < b.Msg
	})
}
