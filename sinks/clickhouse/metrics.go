package clickhouse

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	records           prometheus.Counter
	tombstones        prometheus.Counter
	fastPath          prometheus.Counter
	fetchErrors       prometheus.Counter
	deadLetters       *prometheus.CounterVec
	rows              *prometheus.CounterVec
	batches           *prometheus.CounterVec
	insertSeconds     *prometheus.HistogramVec
	buffered          prometheus.Gauge
	breakerOpen       prometheus.Gauge
	inFlight          prometheus.Gauge
	partitions        prometheus.Gauge
	partitionsDropped prometheus.Counter
	columns           *prometheus.CounterVec
	batchWait         *prometheus.HistogramVec
	recordAge         *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records:     prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_sink_records_total", Help: "Kafka records consumed."}),
		tombstones:  prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_sink_tombstones_total", Help: "Tombstones (nil values) seen on compacted topics; they write no row."}),
		fastPath:    prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_sink_fast_path_records_total", Help: "Records mapped from the wire format without decoding a message (vitals and anomaly scores); the rest of wardstream_sink_records_total took the general path."}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_sink_fetch_errors_total", Help: "Kafka fetch errors."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_sink_dead_letters_total", Help: "Records sent to the dead-letter topic, by reason (decode, convert, time_out_of_range)."}, []string{"reason"}),
		rows:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_sink_rows_inserted_total", Help: "Rows ClickHouse acknowledged, by table."}, []string{"table"}),
		batches:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_sink_batches_total", Help: "Batch insert attempts, by table and result (ok, error)."}, []string{"table", "result"}),
		insertSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wardstream_sink_insert_duration_seconds", Help: "Batch insert latency, by table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"table"}),
		buffered:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_sink_buffered_rows", Help: "Rows held in pending batches."}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_sink_breaker_open", Help: "1 while the ClickHouse circuit breaker is open and fetching is paused."}),
		inFlight:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_sink_inserts_in_flight", Help: "Batches ClickHouse is inserting (or retrying) while the sink fills the next ones."}),
		partitions:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_sink_assigned_partitions", Help: "Kafka partitions assigned to this replica."}),
		columns:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_sink_columns_total", Help: "Columns handed to clickhouse-go per insert attempt, by path: direct (the sink's buffer in the native layout, one copy) or append (the public Append; see sinks/clickhouse/wire.go)."}, []string{"path"}),
		batchWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wardstream_sink_batch_wait_seconds", Help: "From a batch's first row to ClickHouse's acknowledgement of it (batching, waiting for the loop, inserting), by table.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"table"}),
		recordAge: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wardstream_sink_record_age_seconds", Help: "Age of a batch's oldest Kafka record (its producer timestamp) when ClickHouse acknowledged the batch, by table: the path from the producing stage to queryable rows, worst record of each batch.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"table"}),
		partitionsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_sink_expired_partitions_dropped_total", Help: "Month partitions dropped for retention (servers without TTL)."}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.tombstones, m.fastPath, m.fetchErrors, m.deadLetters, m.rows, m.batches, m.insertSeconds,
			m.buffered, m.breakerOpen, m.inFlight, m.partitions, m.partitionsDropped, m.columns, m.batchWait, m.recordAge)
	}
	return m
}
