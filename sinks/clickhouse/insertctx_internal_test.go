package clickhouse

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wardstream/wardstream/internal/testutil"
)

// TestIntegrationInsertContext: on the real ClickHouse, with every core
// busy (so that clickhouse-go's watchdog goroutine runs late), inserts
// whose context ends right after Send sometimes lose the pooled connection
// (logged, not asserted: it is a race), and inserts through insertContext
// never do.
func TestIntegrationInsertContext(t *testing.T) {
	svc := testutil.Integration(t)
	open := func() clickhouse.Conn {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}, MaxOpenConns: 2, MaxIdleConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// Each way has its own pool: a late close from the first must not
	// reach the second's connections.
	conn := open()
	ctx := context.Background()
	table := "default." + testutil.Unique(t, "insertctx")
	if err := conn.Exec(ctx, "CREATE TABLE "+table+" (x UInt64) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	stop := make(chan struct{})
	defer close(stop)
	for range runtime.GOMAXPROCS(0) {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	insert := func(conn clickhouse.Conn, ictx context.Context, i int) error {
		b, err := conn.PrepareBatch(ictx, "INSERT INTO "+table+" (x)")
		if err != nil {
			return err
		}
		if err := b.Append(uint64(i)); err != nil {
			return err
		}
		return b.Send()
	}
	const n = 500
	immediate := 0
	for i := range n {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if insert(conn, ictx, i) != nil {
			immediate++
		}
		cancel()
	}
	var errs []error
	conn2 := open()
	for i := range n {
		ictx, done := insertContext(ctx, 30*time.Second)
		if err := insert(conn2, ictx, i); err != nil {
			errs = append(errs, err)
		}
		done()
	}
	t.Logf("inserts failed: %d of %d with the context cancelled right after Send, %d of %d with insertContext", immediate, n, len(errs), n)
	if len(errs) > 0 {
		t.Fatalf("%d inserts failed with insertContext, first: %v", len(errs), errors.Join(errs[0]))
	}
	// The parent still aborts an insert in flight.
	pctx, pcancel := context.WithCancel(ctx)
	ictx, done := insertContext(pctx, 30*time.Second)
	defer done()
	pcancel()
	select {
	case <-ictx.Done(): // context.AfterFunc cancels from its own goroutine
	case <-time.After(2 * time.Second):
		t.Fatal("the parent's end did not reach the insert context")
	}
}
