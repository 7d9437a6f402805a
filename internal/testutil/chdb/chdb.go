// Package chdb runs SQL on a modern ClickHouse engine for the integration
// tests: chDB (ClickHouse 26.9 built as a library, installed from PyPI by
// deploy/local/chdb.sh) in a Python child process that keeps one session
// (one data directory) for its lifetime.
//
// Debian ships only ClickHouse 18.16, the server the other integration
// tests use. The schema's modern variant (DateTime64, LowCardinality,
// CODECs, TTL) would otherwise be checked as generated text only; with
// this Conn the real migrator applies it to a real modern engine and the
// BI views are queried there. chDB speaks no network protocol, so the
// sink's native-protocol inserts are not covered by it.
//
// Access management: chDB has no writable access storage, so CREATE
// USER/ROLE, GRANT and the like cannot take effect there. The child runs
// with access_management on, so such statements are parsed and checked
// like any other; the two errors that only say "no storage for users and
// roles" (ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND, UNKNOWN_ROLE/USER) are
// accepted for them and the statements are listed in [Conn.AccessOnly]. A
// syntax error in one still fails.
package chdb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardstream/wardstream/internal/testutil"
)

// EnvSite names the directory holding the unpacked chdb-core wheel; the
// default is .local/chdb/site under the repository root.
const EnvSite = "WARDSTREAM_CHDB_SITE"

// server is the child: one JSON request per line on stdin ({"q": SQL}),
// one JSON answer per line on stdout ({"rows": [[string...]...]} or
// {"error": message}). Rows come in JSONCompactStringsEachRow, every value
// as ClickHouse's own text form.
const server = `
import json, os, sys
import chdb
d = sys.argv[1]
with open(os.path.join(d, "users.xml"), "w") as f:
    f.write("<clickhouse><profiles><default/></profiles><quotas><default/></quotas><users><default>"
            "<password></password><networks><ip>::/0</ip></networks><profile>default</profile>"
            "<quota>default</quota><access_management>1</access_management></default></users></clickhouse>")
with open(os.path.join(d, "config.xml"), "w") as f:
    f.write("<clickhouse><users_config>%s</users_config></clickhouse>" % os.path.join(d, "users.xml"))
se = chdb.connect("file:%s?config-file=%s" % (os.path.join(d, "data"), os.path.join(d, "config.xml")))
for line in sys.stdin:
    q = json.loads(line)["q"]
    try:
        out = se.query(q, "JSONCompactStringsEachRow").bytes().decode()
        ans = {"rows": [json.loads(l) for l in out.splitlines() if l.strip()]}
    except Exception as e:
        ans = {"error": str(e)}
    sys.stdout.write(json.dumps(ans) + "\n")
    sys.stdout.flush()
`

// Conn is a session on the engine; it implements the schema package's
// Conn (Exec, QueryStrings, ServerVersion). Safe for concurrent use.
type Conn struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	// access holds the access statements accepted without effect.
	access []string
}

// AccessOnly returns the access-management statements that were parsed
// and accepted but could not take effect (see the package doc).
func (c *Conn) AccessOnly() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.access...)
}

// accessStatement reports whether q manages users, roles or grants.
func accessStatement(q string) bool {
	f := strings.Fields(strings.ToUpper(q))
	if len(f) < 2 {
		return false
	}
	switch f[0] {
	case "GRANT", "REVOKE":
		return true
	case "CREATE", "ALTER", "DROP":
		switch f[1] {
		case "USER", "ROLE", "QUOTA", "SETTINGS", "PROFILE":
			return true
		case "ROW":
			return len(f) > 2 && f[2] == "POLICY"
		}
	}
	return false
}

// noAccessStorage reports whether msg is one of the errors that only say
// chDB keeps no users or roles.
func noAccessStorage(msg string) bool {
	for _, code := range []string{"(ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND)", "(UNKNOWN_ROLE)", "(UNKNOWN_USER)"} {
		if strings.Contains(msg, code) {
			return true
		}
	}
	return false
}

// Site returns where the chdb-core wheel is unpacked, or "" if it is not.
func Site() string {
	site := os.Getenv(EnvSite)
	if site == "" {
		if root := testutil.RepoRoot(); root != "" {
			site = filepath.Join(root, ".local", "chdb", "site")
		}
	}
	if _, err := os.Stat(filepath.Join(site, "chdb", "__init__.py")); err != nil {
		return ""
	}
	return site
}

// Open starts an engine with a fresh data directory for t, stopped when t
// ends. Like every integration test it skips unless WARDSTREAM_IT=1; then
// a missing chDB fails the test (make test installs it).
func Open(t testing.TB) *Conn {
	t.Helper()
	testutil.Integration(t)
	site := Site()
	if site == "" {
		t.Fatalf("chDB is not installed: run bash deploy/local/chdb.sh (make deps does), or set %s", EnvSite)
	}
	c, err := Start(site, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start runs the engine from site with its data in dir.
func Start(site, dir string) (*Conn, error) {
	cmd := exec.Command("python3", "-c", server, dir)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+site)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("chdb: stdin pipe: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("chdb: stdout pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("chdb: starting python3 with %s: %w", site, err)
	}
	return &Conn{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}, nil
}

// Close stops the engine.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.in.Close()
	return c.cmd.Wait()
}

// ErrArgs: the arguments do not match the query's placeholders.
var ErrArgs = errors.New("chdb: query arguments do not match the ? placeholders")

// Bind replaces each ? outside quoted strings and identifiers with the next
// argument as a SQL literal (clickhouse-go binds positional arguments on
// the client too): strings are quoted, time.Time becomes its UTC text,
// numbers print as Go prints them.
func Bind(q string, args ...any) (string, error) {
	if len(args) == 0 {
		return q, nil
	}
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(q) {
				i++
				b.WriteByte(q[i])
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
			b.WriteByte(c)
		case c == '?':
			if n >= len(args) {
				return "", fmt.Errorf("%w: more than %d placeholders", ErrArgs, len(args))
			}
			b.WriteString(Literal(args[n]))
			n++
		default:
			b.WriteByte(c)
		}
	}
	if n != len(args) {
		return "", fmt.Errorf("%w: %d placeholders, %d arguments", ErrArgs, n, len(args))
	}
	return b.String(), nil
}

// Literal is v as a ClickHouse SQL literal.
func Literal(v any) string {
	switch v := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	case time.Time:
		return "'" + v.UTC().Format("2006-01-02 15:04:05") + "'"
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

func (c *Conn) run(q string) ([][]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := json.Marshal(map[string]string{"q": q})
	if err != nil {
		return nil, err
	}
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("chdb: sending query: %w", err)
	}
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("chdb: reading answer: %w", err)
	}
	var ans struct {
		Rows  [][]string `json:"rows"`
		Error string     `json:"error"`
	}
	if err := json.Unmarshal(line, &ans); err != nil {
		return nil, fmt.Errorf("chdb: decoding answer %.200q: %w", line, err)
	}
	if ans.Error != "" {
		if accessStatement(q) && noAccessStorage(ans.Error) {
			c.access = append(c.access, q)
			return nil, nil
		}
		return nil, fmt.Errorf("chdb: %s: %s", abbreviate(q), ans.Error)
	}
	return ans.Rows, nil
}

func abbreviate(q string) string {
	if len(q) > 160 {
		return q[:160] + "..."
	}
	return q
}

// Exec runs a statement.
func (c *Conn) Exec(_ context.Context, q string, args ...any) error {
	q, err := Bind(q, args...)
	if err != nil {
		return err
	}
	_, err = c.run(q)
	return err
}

// QueryStrings runs q and returns each row's values in ClickHouse's text form.
func (c *Conn) QueryStrings(_ context.Context, q string, args ...any) ([][]string, error) {
	q, err := Bind(q, args...)
	if err != nil {
		return nil, err
	}
	return c.run(q)
}

// ServerVersion returns the engine's version().
func (c *Conn) ServerVersion(ctx context.Context) (string, error) {
	rows, err := c.run("SELECT version()")
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", fmt.Errorf("chdb: version() returned %v", rows)
	}
	return rows[0][0], nil
}
