// Package bench provides the wardstream load and correctness harness behind
// `wardstream bench`: scenario files (bench/scenarios/*.yaml), a simulator of
// a hospital's devices whose expected clinical outcomes are known, senders
// that drive the real path (MQTT broker -> connector -> Kafka -> processors
// -> sink -> ClickHouse, or one stage of it), observers that read back what
// became queryable, and the results writer (results.json, results.md and
// SVG plots drawn here).
//
// A run ([Run]) starts the roles it measures as child processes (`wardstream
// run --roles R`), so that CPU time and RSS per role come from /proc; it
// isolates itself from other runs with its own tenant, device-id prefix,
// ClickHouse database and, where the roles support it, topic prefix and
// consumer groups, and removes them afterwards. The main types are
// [Scenario] (what load), [Fleet] (the simulated devices, patients,
// schedules and planned intakes, with [Fleet.Expect] giving the outcomes the
// pipeline must compute), [Observer] (ClickHouse read-back) and [Results].
//
// Cameras are synthetic RTSP streams: ffmpeg encodes a moving red box (what
// the rtsp connector's colorbox test model calls a person) as H.264 into an
// RTSP relay served by the harness, which the rtsp role reads. It checks only
// the clinical answers the simulator controls exactly: dose outcomes, daily
// and 7-day adherence counts, MISSED_DOSE and PUMP_FAILURE alerts. bench sits on top of the dependency
// graph: nothing imports it.
package bench
