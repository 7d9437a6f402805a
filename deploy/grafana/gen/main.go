// Command gen writes the Grafana dashboards of schemas/clickhouse into
// deploy/grafana (run from the repository root:
// go run ./deploy/grafana/gen). The queries are defined, and tested, in
// schemas/clickhouse/dashboards.go; edit them there, never in the JSON.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

func main() {
	dir := filepath.Join("deploy", "grafana")
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, d := range chschema.Dashboards() {
		b, err := chschema.DashboardJSON(d)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		p := filepath.Join(dir, d.UID+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		fmt.Println(p)
	}
}
