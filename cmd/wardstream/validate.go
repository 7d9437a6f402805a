package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/bench"
	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/connectors/mqtt"
	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/deploy"
	"github.com/wardstream/wardstream/pipelines/processors"
	chsink "github.com/wardstream/wardstream/sinks/clickhouse"
)

// sectionCheck validates one role section of the topology with the role's
// own Config (strict decode over DefaultConfig, then Validate).
type sectionCheck struct {
	// path is the section's dotted path ("connectors.mqtt").
	path string
	// node returns the raw section.
	node func(r *config.Root) *yaml.Node
	// check decodes and validates the section; nil while the role's Config
	// is not part of this build, in which case the section is reported as
	// "not checked" rather than passed.
	check func(r *config.Root) error
	// pending says which work brings the role's Config (for "not checked").
	pending string
}

// sectionChecks lists every role section of the topology. When a role's
// Config lands, its entry gets a check.
func sectionChecks() []sectionCheck {
	return []sectionCheck{
		{path: "connectors.mqtt", node: func(r *config.Root) *yaml.Node { return &r.Connectors.MQTT },
			check: func(r *config.Root) error { _, err := mqtt.LoadConfig(r); return err }},
		{path: "connectors.rtsp", node: func(r *config.Root) *yaml.Node { return &r.Connectors.RTSP },
			check: func(r *config.Root) error { _, err := rtsp.Load(r); return err }},
		{path: "pipelines", node: func(r *config.Root) *yaml.Node { return &r.Pipelines },
			check: func(r *config.Root) error { _, err := processors.Load(r); return err }},
		{path: "sinks.clickhouse", node: func(r *config.Root) *yaml.Node { return &r.Sinks.ClickHouse },
			check: func(r *config.Root) error { _, err := chsink.Load(r); return err }},
		{path: "api", node: func(r *config.Root) *yaml.Node { return &r.API },
			check: func(r *config.Root) error { _, err := api.LoadConfig(r); return err }},
		{path: "bench", node: func(r *config.Root) *yaml.Node { return &r.Bench },
			check: func(r *config.Root) error { _, err := bench.LoadConfig(r); return err }},
		{path: deploy.ScalingSection, node: func(r *config.Root) *yaml.Node { return &r.Scaling },
			check: func(r *config.Root) error {
				s, err := deploy.DecodeScaling(r)
				if err != nil {
					return err
				}
				return errors.Join(s.Validate(), s.Check(r.Kafka, countCameras(r)))
			}},
	}
}

// countCameras counts the cameras the rtsp section declares.
func countCameras(r *config.Root) int {
	var sec struct {
		Cameras []yaml.Node `yaml:"cameras"`
	}
	if r.Connectors.RTSP.Kind == 0 || r.Connectors.RTSP.Decode(&sec) != nil {
		return 0
	}
	return len(sec.Cameras)
}

// validateResult is what validating one topology file found.
type validateResult struct {
	problems []deploy.Problem
	// sections holds "path<TAB>status" lines in check order.
	sections []string
	// unchecked counts role sections that are present but not checked
	// (their role is not part of this build), and absent sections whose
	// role would not start on its defaults.
	unchecked int
}

var notFoundInType = regexp.MustCompile(`field (\S+) not found in type \S+`)

// validateTopology checks a topology document fully, as written (env
// overrides are not applied): strict decoding and Validate of the shared
// sections, each role section with its role's Config, the scaling hints,
// and cross-references between sections. Every problem carries a line.
func validateTopology(data []byte) validateResult {
	var res validateResult
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		res.problems = deploy.Problems(errors.New(strings.TrimPrefix(err.Error(), "yaml: ")), &doc, "")
		res.sections = append(res.sections, "document\tnot YAML")
		return res
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	seen := map[string]bool{}
	add := func(ps []deploy.Problem) int {
		n := 0
		for _, p := range ps {
			if k := p.String(); !seen[k] {
				seen[k] = true
				res.problems = append(res.problems, p)
				n++
			}
		}
		return n
	}

	// Shared sections: strict decode (unknown keys, types, durations), then
	// Validate. A strict-decode failure still lets a lenient decode find
	// the field errors, so one run reports everything it can.
	root := config.Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	shared := 0
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
		msg = notFoundInType.ReplaceAllString(msg, "unknown field $1")
		shared += add(deploy.Problems(errors.New(msg), &doc, ""))
		root = config.Default()
		_ = doc.Decode(&root) // lenient: best effort for the checks below
	}
	shared += add(deploy.Problems(root.Validate(), &doc, ""))
	status := "ok"
	if shared > 0 {
		status = fmt.Sprintf("%d problem(s)", shared)
	}
	res.sections = append(res.sections, "tenant, tenants, kafka, clickhouse, mqtt, telemetry, process, drain_timeout\t"+status)

	for _, sc := range sectionChecks() {
		n := sc.node(&root)
		present := n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
		switch {
		case sc.check == nil && !present:
			res.sections = append(res.sections, sc.path+"\tabsent")
		case sc.check == nil:
			res.unchecked++
			res.sections = append(res.sections, fmt.Sprintf("%s\tnot checked: %s is not part of this build yet", sc.path, sc.pending))
		case !present:
			// An absent section means the role runs on its defaults. Some
			// roles need settings no default can give (the api's identity
			// provider); that only matters where the role runs, so it is a
			// note, not a problem (--require-all makes it one).
			st := "absent: defaults ok"
			if err := sc.check(&root); err != nil {
				res.unchecked++
				st = "absent: this role would not start on defaults (" + strings.ReplaceAll(err.Error(), "\n", "; ") + ")"
			}
			res.sections = append(res.sections, sc.path+"\t"+st)
		default:
			k := add(deploy.Problems(sc.check(&root), &doc, sc.path))
			st := "ok"
			if k > 0 {
				st = fmt.Sprintf("%d problem(s)", k)
			}
			res.sections = append(res.sections, sc.path+"\t"+st)
		}
	}

	k := add(deploy.CrossCheck(&doc))
	st := "ok"
	if k > 0 {
		st = fmt.Sprintf("%d problem(s)", k)
	}
	res.sections = append(res.sections, "cross-references (tenants, wards, cameras, topics)\t"+st)
	deploy.SortProblems(res.problems)
	return res
}

func cmdValidate(_ context.Context, args []string) error {
	fs := newFlags("validate")
	requireAll := fs.Bool("require-all", false, "also fail when a role section could not be checked (role not part of this build) or is absent while its role cannot start on defaults")
	quiet := fs.Bool("quiet", false, "print only problems")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: want a topology FILE", errUsage)
	}
	return validateFiles(os.Stdout, fs.Args(), *requireAll, *quiet)
}

// validateFiles validates each file, writing problems as FILE:LINE: lines
// (and, unless quiet, a per-section summary) to w. It returns a one-line
// error when any file has problems.
func validateFiles(w io.Writer, files []string, requireAll, quiet bool) error {
	total, failed := 0, 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("reading topology: %w", err)
		}
		res := validateTopology(data)
		for _, p := range res.problems {
			if p.Line > 0 {
				fmt.Fprintf(w, "%s:%d: %s\n", file, p.Line, strings.TrimPrefix(p.String(), fmt.Sprintf("line %d: ", p.Line)))
			} else {
				fmt.Fprintf(w, "%s: %s\n", file, p.String())
			}
		}
		if !quiet {
			fmt.Fprintf(w, "%s:\n", file)
			for _, s := range res.sections {
				name, st, _ := strings.Cut(s, "\t")
				fmt.Fprintf(w, "  %-58s %s\n", name, st)
			}
		}
		total += len(res.problems)
		if len(res.problems) > 0 || (requireAll && res.unchecked > 0) {
			failed++
		}
		if requireAll && res.unchecked > 0 && len(res.problems) == 0 {
			fmt.Fprintf(w, "%s: %d role section(s) not checked or incomplete (--require-all)\n", file, res.unchecked)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d topology file(s) failed validation (%d problem(s))", failed, len(files), total)
	}
	return nil
}
