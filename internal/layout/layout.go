// Package layout holds the test that enforces wardstream's dependency rule
// (see STYLE.md §1): schemas import nothing of ours, internal imports only
// schemas and internal, roles (connectors/*, pipelines/*, sinks/*) import
// only schemas and internal (never a sibling role), and nothing imports cmd
// or bench. It has no non-test code.
package layout
