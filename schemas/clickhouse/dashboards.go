package clickhouse

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Grafana dashboards over the BI views and tables. The panel queries live
// here, in one place: `go run ./deploy/grafana/gen` writes them into the
// dashboard JSON under deploy/grafana, a unit test checks that
// the committed JSON is exactly what this file generates, and an
// integration test runs every query (macros expanded as Grafana's
// ClickHouse data source does) against a fixed data set. The queries use
// only functions Debian's 18.16 has (no toStartOfInterval), and the
// database is the dashboard variable ${database}.

// DataSourceUID is the uid of the ClickHouse data source the dashboards use.
const DataSourceUID = "wardstream-clickhouse"

// Panel is one dashboard panel.
type Panel struct {
	Title string
	// Kind is "timeseries", "table", "stat" or "barchart".
	Kind string
	// SQL is the query, with Grafana macros ($__timeFilter(col),
	// $__fromTime, $__toTime) and variables (${tenant}, ${database}).
	SQL string
	// Format is the query format: "time_series" or "table".
	Format string
}

// Dashboard is one Grafana dashboard.
type Dashboard struct {
	UID, Title string
	Panels     []Panel
}

// Dashboards returns every dashboard.
func Dashboards() []Dashboard {
	return []Dashboard{
		{UID: "wardstream-adherence", Title: "wardstream / Adherence", Panels: []Panel{
			{"Adherence ratio per day and ward", "timeseries", "SELECT toDateTime(day) AS time, ward, sum(doses_taken) / greatest(sum(doses_due), 1) AS adherence\nFROM ${database}.bi_adherence_daily\nWHERE tenant = '${tenant}' AND day >= toDate($__fromTime) AND day <= toDate($__toTime)\nGROUP BY time, ward ORDER BY time, ward", "time_series"},
			{"Adherence by medication", "table", "SELECT medication_id, sum(patients) AS patient_days, sum(doses_due) AS due, sum(doses_taken) AS taken, round(taken / greatest(due, 1), 3) AS adherence\nFROM ${database}.bi_adherence_daily\nWHERE tenant = '${tenant}' AND day >= toDate($__fromTime) AND day <= toDate($__toTime)\nGROUP BY medication_id ORDER BY adherence, medication_id", "table"},
		}},
		{UID: "wardstream-missed-doses", Title: "wardstream / Missed doses", Panels: []Panel{
			{"Missed doses per day", "barchart", "SELECT toDateTime(day) AS time, count() AS missed\nFROM ${database}.bi_missed_doses\nWHERE tenant = '${tenant}' AND $__timeFilter(scheduled_time)\nGROUP BY time ORDER BY time", "time_series"},
			{"Missed doses", "table", "SELECT scheduled_time, ward, patient_id, medication_id, device_id, dose_id\nFROM ${database}.bi_missed_doses\nWHERE tenant = '${tenant}' AND $__timeFilter(scheduled_time)\nORDER BY scheduled_time DESC, dose_id LIMIT 500", "table"},
		}},
		{UID: "wardstream-vitals-anomalies", Title: "wardstream / Vitals anomalies", Panels: []Panel{
			{"Anomaly score (max per minute)", "timeseries", "SELECT toStartOfMinute(event_time) AS time, level, max(score) AS score\nFROM ${database}.anomaly_scores\nWHERE tenant = '${tenant}' AND $__timeFilter(event_time)\nGROUP BY time, level ORDER BY time, level", "time_series"},
			{"Most anomalous devices", "table", "SELECT device_id, ward, count() AS scored, countIf(level != 'NORMAL') AS anomalies, max(score) AS max_score\nFROM (SELECT device_id, ward, level, score FROM ${database}.anomaly_scores FINAL WHERE tenant = '${tenant}' AND $__timeFilter(event_time))\nGROUP BY device_id, ward ORDER BY max_score DESC, device_id LIMIT 50", "table"},
			{"Heart rate p95 per minute", "timeseries", "SELECT minute AS time, device_id, quantileTimingIfMerge(0.95)(hr_p95) AS hr_p95\nFROM ${database}.vitals_1m\nWHERE tenant = '${tenant}' AND $__timeFilter(minute)\nGROUP BY time, device_id ORDER BY time, device_id", "time_series"},
		}},
		{UID: "wardstream-fleet-health", Title: "wardstream / Fleet health", Panels: []Panel{
			{"Devices online", "stat", "SELECT sum(online) AS online, count() AS devices FROM ${database}.bi_fleet_health WHERE tenant = '${tenant}'", "table"},
			{"Low battery (< 20%)", "table", "SELECT device_id, device_type, ward, battery_level, online, last_seen\nFROM ${database}.bi_fleet_health WHERE tenant = '${tenant}' AND battery_level < 20 ORDER BY battery_level, device_id", "table"},
			{"Fleet", "table", "SELECT device_id, device_type, ward, online, battery_level, signal_strength, firmware_version, status, last_seen, reports\nFROM ${database}.bi_fleet_health WHERE tenant = '${tenant}' ORDER BY device_id", "table"},
		}},
		{UID: "wardstream-cameras", Title: "wardstream / Cameras", Panels: []Panel{
			{"Detections per minute by class", "timeseries", "SELECT minute AS time, class_name, sum(detections) AS detections\nFROM ${database}.bi_camera_activity\nWHERE tenant = '${tenant}' AND $__timeFilter(minute)\nGROUP BY time, class_name ORDER BY time, class_name", "time_series"},
			{"Camera activity", "table", "SELECT camera_id, ward, class_name, sum(detections) AS detections, max(max_confidence) AS max_confidence\nFROM ${database}.bi_camera_activity\nWHERE tenant = '${tenant}' AND $__timeFilter(minute)\nGROUP BY camera_id, ward, class_name ORDER BY camera_id, class_name", "table"},
			{"Video events by type", "barchart", "SELECT event_type, count() AS events\nFROM ${database}.video_events FINAL\nWHERE tenant = '${tenant}' AND $__timeFilter(event_time)\nGROUP BY event_type ORDER BY event_type", "table"},
		}},
		{UID: "wardstream-pipeline-health", Title: "wardstream / Pipeline health", Panels: []Panel{
			{"Rows ingested per minute", "timeseries", "SELECT toStartOfMinute(ingest_time) AS time, 'vitals' AS table_name, count() AS rows FROM ${database}.vitals WHERE tenant = '${tenant}' AND $__timeFilter(ingest_time) GROUP BY time\nUNION ALL\nSELECT toStartOfMinute(ingest_time) AS time, 'detections' AS table_name, count() AS rows FROM ${database}.detections WHERE tenant = '${tenant}' AND $__timeFilter(ingest_time) GROUP BY time\nUNION ALL\nSELECT toStartOfMinute(ingest_time) AS time, 'intakes' AS table_name, count() AS rows FROM ${database}.intakes WHERE tenant = '${tenant}' AND $__timeFilter(ingest_time) GROUP BY time", "time_series"},
			{"Dead letters by stage and reason", "table", "SELECT stage, reason, source_topic, count() AS dead_letters, max(event_time) AS last\nFROM ${database}.dead_letters WHERE $__timeFilter(ingest_time)\nGROUP BY stage, reason, source_topic ORDER BY dead_letters DESC, stage, reason", "table"},
			{"Ingest delay p95 (s), vitals", "timeseries", "SELECT toStartOfMinute(ingest_time) AS time, quantile(0.95)(toFloat64(toUInt32(ingest_time)) - toFloat64(toUInt32(event_time))) AS delay_s\nFROM ${database}.vitals WHERE tenant = '${tenant}' AND $__timeFilter(ingest_time) GROUP BY time ORDER BY time", "time_series"},
			{"Freshness: seconds since the newest row", "stat", "SELECT 'vitals' AS table_name, toInt64(toUInt32(now())) - toInt64(toUInt32(max(ingest_time))) AS seconds FROM ${database}.vitals WHERE tenant = '${tenant}'\nUNION ALL\nSELECT 'dose_outcomes' AS table_name, toInt64(toUInt32(now())) - toInt64(toUInt32(max(ingest_time))) AS seconds FROM ${database}.dose_outcomes WHERE tenant = '${tenant}'", "table"},
		}},
	}
}

var timeFilterRe = regexp.MustCompile(`\$__timeFilter\(([a-z_]+)\)`)

// ExpandMacros does what Grafana's ClickHouse data source does to a panel
// query for a time range, tenant and database (tests run the result).
func ExpandMacros(sql string, from, to time.Time, tenant, database string) string {
	f, t := fmt.Sprintf("toDateTime(%d)", from.Unix()), fmt.Sprintf("toDateTime(%d)", to.Unix())
	sql = timeFilterRe.ReplaceAllString(sql, "$1 >= "+f+" AND $1 <= "+t)
	return strings.NewReplacer("$__fromTime", f, "$__toTime", t, "${tenant}", strings.ReplaceAll(tenant, "'", ""), "${database}", database).Replace(sql)
}

// DashboardJSON renders d as Grafana dashboard JSON for the
// grafana-clickhouse-datasource plugin, with "database" and "tenant"
// template variables.
func DashboardJSON(d Dashboard) ([]byte, error) {
	// The uid is the one deploy/compose provisions the data source with.
	ds := map[string]any{"type": "grafana-clickhouse-datasource", "uid": DataSourceUID}
	var panels []any
	for i, p := range d.Panels {
		format := 1 // table
		if p.Format == "time_series" {
			format = 0
		}
		panels = append(panels, map[string]any{
			"id": i + 1, "type": p.Kind, "title": p.Title, "datasource": ds,
			"gridPos": map[string]int{"x": (i % 2) * 12, "y": (i / 2) * 9, "w": 12, "h": 9},
			"targets": []any{map[string]any{
				"refId": "A", "datasource": ds, "editorType": "sql", "queryType": "sql", "format": format, "rawSql": p.SQL,
			}},
		})
	}
	doc := map[string]any{
		"uid": d.UID, "title": d.Title, "schemaVersion": 39, "version": 1, "editable": true,
		"tags": []string{"wardstream"}, "time": map[string]string{"from": "now-24h", "to": "now"}, "refresh": "30s",
		"templating": map[string]any{"list": []any{
			map[string]any{"name": "database", "type": "constant", "query": "wardstream", "hide": 2},
			map[string]any{"name": "tenant", "type": "query", "datasource": ds, "label": "Tenant",
				"query": "SELECT DISTINCT tenant FROM ${database}.bi_fleet_health ORDER BY tenant", "refresh": 1},
		}},
		"panels": panels,
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering dashboard %s: %w", d.UID, err)
	}
	return append(out, '\n'), nil
}
