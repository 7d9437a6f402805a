// Package clickhouse provides the ClickHouse sink role: it consumes
// wardstream's catalog topics as one Kafka consumer group
// (topics.GroupSink; replicas share the partitions), decodes each record's
// protobuf, converts it to rows of its table (schemas/clickhouse) with an
// explicit column list, and inserts them in columnar native batches with
// clickhouse-go.
//
// # Delivery
//
// At-least-once into ClickHouse, exactly-once in the answers:
//
//   - A table's batch is sent when it holds batch_rows rows or its oldest
//     row is batch_age old (so a quiet table writes at most one part per
//     batch_age). Offsets are marked for commit only after Send returned
//     nil, and only up to the lowest offset still pending in any table's
//     batch (a partition's records can feed several tables).
//   - Inserts are pipelined (flight.go): a due batch is detached and
//     inserted by a goroutine of its own while the loop fetches and fills
//     the table's next batch; one insert per table at a time (order kept),
//     at most 4 at once. A partition's commit point also stops at batches
//     in the air. serial_inserts makes the loop wait for every insert
//     instead. Each insert's context outlives its Send by a few seconds
//     (insertContext: a clickhouse-go race).
//   - A failed insert is retried with exponential backoff and jitter; after
//     breaker_failures consecutive failures the circuit breaker opens,
//     fetching is paused (PauseFetchTopics) and one probe insert is tried
//     per breaker_cooldown. Memory stays bounded by max_buffered_rows (rows
//     filling and in the air) plus the fetch buffer: a table whose next
//     batch is full waits for its insert, and the loop waits for landings
//     while max_buffered_rows are held.
//   - On a rebalance, every batch (filling and in the air) is inserted and
//     committed before the revoked partitions move, within
//     revoke_flush_timeout; if ClickHouse is failing then, the batches are
//     dropped uncommitted and re-read (by the new owner, or by us after a
//     rewind).
//   - A record that cannot be decoded or converted (no event id, bad date,
//     no partition key, a time or date outside its column type's range, a
//     state that is not valid JSON) goes to the dead-letter topic with its
//     reason; a broken dead letter goes straight to the dead_letters table.
//     If the dead letter cannot be produced, the record's partition is not
//     committed past it.
//   - Replays (a crash, a rebalance, an upstream redelivery) insert rows a
//     second time. The tables are ReplacingMergeTree keyed by the row's
//     identity, and on servers >= 22.3 every batch carries an
//     insert_deduplication_token so a retried batch is dropped by the
//     server. See README.md for the query patterns that make answers exact.
//
// What it does not do: it creates no tables (wardstream migrate does), and
// it does not transform or join records beyond flattening (frame
// detections become one row per detection).
package clickhouse
