package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardstream/wardstream/schemas/codec"
	"github.com/wardstream/wardstream/schemas/dose"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Who may call what. Analysts see aggregates, alerts and pipeline health,
// not patient-level histories or device shadows; only admins change device
// shadows or send fleet commands.
var (
	anyRole = []string{RoleAdmin, RoleMedicalStaff, RoleAnalyst}
	care    = []string{RoleAdmin, RoleMedicalStaff}
	admins  = []string{RoleAdmin}
)

// commandRoles says who may send each command type.
var commandRoles = map[pb.CommandType][]string{
	pb.CommandType_UPDATE_SCHEDULE:  care,
	pb.CommandType_TRIGGER_REMINDER: care,
	pb.CommandType_PING:             care,
	pb.CommandType_EMERGENCY_MODE:   care,
	pb.CommandType_FACTORY_RESET:    admins,
	pb.CommandType_SECURE_DEVICE:    admins,
}

// routeTable lists every route. openapi.yaml must describe exactly these
// (TestOpenAPIMatchesRoutes).
func (s *Server) routeTable() []route {
	return []route{
		{method: "GET", path: "/{$}", name: "dashboardPage", raw: s.serveIndex},
		{method: "GET", path: "/assets/{file}", name: "dashboardAsset", raw: s.serveAsset},
		{method: "GET", path: "/openapi.yaml", name: "openapi", raw: serveOpenAPI},
		{method: "GET", path: "/.well-known/jwks.json", name: "jwks", raw: s.serveJWKS},

		{method: "GET", path: "/api/v1/me", name: "getMe", roles: anyRole, h: s.getMe},
		{method: "POST", path: "/api/v1/schedules", name: "createSchedule", roles: care, write: true, h: s.createSchedule},
		{method: "PUT", path: "/api/v1/schedules/{patientId}/{medicationId}", name: "updateSchedule", roles: care, write: true, h: s.updateSchedule},
		{method: "DELETE", path: "/api/v1/schedules/{patientId}/{medicationId}", name: "deleteSchedule", roles: care, write: true, h: s.deleteSchedule},
		{method: "GET", path: "/api/v1/patients/{patientId}/schedules", name: "patientSchedules", roles: care, h: s.patientSchedules},
		{method: "POST", path: "/api/v1/devices/{deviceId}/commands", name: "sendCommand", roles: care, write: true, h: s.sendCommand},
		{method: "GET", path: "/api/v1/devices/{deviceId}/commands", name: "listCommands", roles: care, h: s.listCommands},
		{method: "GET", path: "/api/v1/devices/{deviceId}/shadow", name: "getShadow", roles: care, h: s.getShadow},
		{method: "PUT", path: "/api/v1/devices/{deviceId}/shadow/desired", name: "putShadowDesired", roles: admins, write: true, h: s.putShadowDesired},
		{method: "GET", path: "/api/v1/alerts", name: "listAlerts", roles: anyRole, h: s.listAlerts},
		{method: "GET", path: "/api/v1/alerts/{alertId}", name: "getAlert", roles: anyRole, h: s.getAlert},
		{method: "POST", path: "/api/v1/alerts/{alertId}/ack", name: "ackAlert", roles: care, write: true, h: s.ackAlert},
		{method: "GET", path: "/api/v1/patients/{patientId}/adherence", name: "patientAdherence", roles: care, h: s.patientAdherence},
		{method: "GET", path: "/api/v1/patients/{patientId}/missed-doses", name: "patientMissedDoses", roles: care, h: s.patientMissedDoses},
		{method: "GET", path: "/api/v1/wards/adherence", name: "wardsAdherence", roles: anyRole, h: s.wardsAdherence},
		{method: "GET", path: "/api/v1/wards/{ward}/adherence", name: "wardAdherence", roles: anyRole, h: s.wardAdherence},
		{method: "GET", path: "/api/v1/wards/{ward}/missed-doses", name: "wardMissedDoses", roles: anyRole, h: s.wardMissedDoses},
		{method: "GET", path: "/api/v1/anomalies", name: "listAnomalies", roles: anyRole, h: s.listAnomalies},
		{method: "GET", path: "/api/v1/camera-events", name: "listCameraEvents", roles: anyRole, h: s.listCameraEvents},
		{method: "GET", path: "/api/v1/audit", name: "listAudit", roles: admins, h: s.listAudit},
		{method: "GET", path: "/api/v1/pipeline/health", name: "pipelineHealth", roles: anyRole, h: s.pipelineHealth},
		{method: "GET", path: "/api/v1/dashboard", name: "getDashboard", roles: anyRole, h: s.getDashboard},
		{method: "GET", path: "/api/v1/stream", name: "stream", roles: anyRole, raw: s.serveStream},
	}
}

func (s *Server) getMe(rc *reqCtx) (int, any, error) {
	return http.StatusOK, map[string]any{"user": rc.p.User, "tenant": rc.p.Tenant, "roles": rc.p.Roles,
		"canWrite": rc.p.Has(care...), "isAdmin": rc.p.Has(admins...)}, nil
}

// --- validation helpers ---

// validID accepts the ids wardstream uses (device, patient, medication,
// ward, alert): 1..128 characters of letters, digits and ._:@- .
func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:@-", c)) {
			return false
		}
	}
	return true
}

func (rc *reqCtx) pathID(name string) (string, error) {
	v := rc.r.PathValue(name)
	if !validID(v) {
		return "", errf(http.StatusBadRequest, "%s %q is not a valid id (1-128 of letters, digits and ._:@-)", name, v)
	}
	return v, nil
}

// validAlertID accepts alert ids, which the alerts processor composes from
// type, subject and window joined by "|" (pipelines/alerts.ID): up to 512
// characters of letters, digits and ._:@-| .
func validAlertID(s string) bool {
	if len(s) == 0 || len(s) > 512 {
		return false
	}
	for _, c := range s {
		if c != '|' && !validID(string(c)) {
			return false
		}
	}
	return true
}

// alertID returns the {alertId} path value (clients percent-encode "|" as %7C).
func (rc *reqCtx) alertID() (string, error) {
	v := rc.r.PathValue("alertId")
	if !validAlertID(v) {
		return "", errf(http.StatusBadRequest, "alertId %q is not a valid alert id (1-512 of letters, digits and ._:@-|)", v)
	}
	return v, nil
}

// queryID returns an optional id query parameter.
func (rc *reqCtx) queryID(name string) (string, error) {
	v := rc.r.URL.Query().Get(name)
	if v != "" && !validID(v) {
		return "", errf(http.StatusBadRequest, "query %s %q is not a valid id", name, v)
	}
	return v, nil
}

func (rc *reqCtx) limit(def, max int) (int, error) {
	v := rc.r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, errf(http.StatusBadRequest, "query limit %q must be an integer in 1..%d", v, max)
	}
	return n, nil
}

// timeParam parses an RFC 3339 time or a YYYY-MM-DD date (midnight in the
// dashboard zone); def when absent.
func (rc *reqCtx) timeParam(name string, def time.Time) (time.Time, error) {
	v := rc.r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, rc.s.locFor(rc.p.Tenant)); err == nil {
		return t, nil
	}
	return time.Time{}, errf(http.StatusBadRequest, "query %s %q is neither an RFC 3339 time nor a YYYY-MM-DD date", name, v)
}

// isDate reports whether a time parameter's value is a YYYY-MM-DD date
// (not an RFC 3339 time).
func isDate(v string) bool {
	_, err := time.Parse(time.DateOnly, v)
	return err == nil
}

// dayRange parses from/to days (YYYY-MM-DD); default the last 30 days.
func (rc *reqCtx) dayRange() (time.Time, time.Time, error) {
	loc := rc.s.locFor(rc.p.Tenant)
	today := startOfDay(rc.s.now().In(loc))
	q := rc.r.URL.Query()
	parse := func(name string, def time.Time) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		t, err := time.ParseInLocation(time.DateOnly, v, loc)
		if err != nil {
			return time.Time{}, errf(http.StatusBadRequest, "query %s %q is not a YYYY-MM-DD date", name, v)
		}
		return t, nil
	}
	to, err := parse("to", today)
	if err != nil {
		return to, to, err
	}
	from, err := parse("from", to.AddDate(0, 0, -29))
	if err != nil {
		return from, to, err
	}
	if from.After(to) {
		return from, to, errf(http.StatusBadRequest, "from %s is after to %s", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	if to.Sub(from) > 366*24*time.Hour {
		return from, to, errf(http.StatusBadRequest, "from..to spans more than 366 days")
	}
	return from, to, nil
}

func startOfDay(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// decodeStrict decodes a JSON object body, rejecting unknown fields and
// trailing data.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errf(http.StatusBadRequest, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	if dec.More() {
		return errf(http.StatusBadRequest, "invalid JSON body: trailing data after the object")
	}
	return nil
}

func (rc *reqCtx) meta() *pb.Meta {
	now := rc.s.now().UnixMilli()
	return &pb.Meta{Tenant: rc.p.Tenant, EventId: newID(), EventTimeMs: now, IngestTimeMs: now, Source: "api"}
}

// --- schedules ---

// parseSchedule decodes and checks a DoseSchedule body (wardstream's JSON
// form: patientId, medicationId, times, ...). meta and version are set by
// the server.
func (s *Server) parseSchedule(body []byte) (*pb.DoseSchedule, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errf(http.StatusBadRequest, "request body must be a DoseSchedule JSON object")
	}
	sc := &pb.DoseSchedule{}
	if err := codec.FromJSON(body, sc); err != nil {
		return nil, errf(http.StatusBadRequest, "invalid schedule: %s", protoJSONReason(err))
	}
	if err := validateSchedule(sc, s.now()); err != nil {
		return nil, err
	}
	return sc, nil
}

// protoJSONReason trims protojson's wrapping for the client.
func protoJSONReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "proto: "); i >= 0 {
		msg = msg[i+len("proto: "):]
	}
	return msg
}

// validateSchedule checks a schedule and fills defaults (doses per time 1,
// start date today in the patient's zone).
func validateSchedule(sc *pb.DoseSchedule, now time.Time) error {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if sc.Meta != nil {
		bad("meta is set by the server")
	}
	if sc.Version != 0 {
		bad("version is set by the server")
	}
	if !validID(sc.PatientId) {
		bad("patientId %q is not a valid id", sc.PatientId)
	}
	if !validID(sc.MedicationId) {
		bad("medicationId %q is not a valid id", sc.MedicationId)
	}
	if sc.DeviceId != "" && !validID(sc.DeviceId) {
		bad("deviceId %q is not a valid id", sc.DeviceId)
	}
	if sc.Ward != "" && !validID(sc.Ward) {
		bad("ward %q is not a valid id", sc.Ward)
	}
	loc, err := time.LoadLocation(sc.Timezone)
	if sc.Timezone == "" || err != nil {
		bad("timezone %q is not an IANA time zone such as Europe/Berlin", sc.Timezone)
		loc = time.UTC
	}
	if len(sc.Times) == 0 && !sc.Deleted {
		bad("times must list at least one HH:MM")
	}
	seen := map[string]bool{}
	for _, t := range sc.Times {
		if _, err := time.Parse("15:04", t); err != nil || len(t) != 5 {
			bad("time %q is not HH:MM", t)
		} else if seen[t] {
			bad("time %q is listed twice", t)
		}
		seen[t] = true
	}
	slices.Sort(sc.Times)
	for _, d := range sc.DaysOfWeek {
		if d < 0 || d > 6 {
			bad("daysOfWeek value %d is not 0 (Sunday)..6 (Saturday)", d)
		}
	}
	if sc.StartDate == "" {
		sc.StartDate = now.In(loc).Format(time.DateOnly)
	}
	start, err := time.Parse(time.DateOnly, sc.StartDate)
	if err != nil {
		bad("startDate %q is not YYYY-MM-DD", sc.StartDate)
	}
	if sc.EndDate != "" {
		end, err := time.Parse(time.DateOnly, sc.EndDate)
		if err != nil {
			bad("endDate %q is not YYYY-MM-DD", sc.EndDate)
		} else if end.Before(start) {
			bad("endDate %s is before startDate %s", sc.EndDate, sc.StartDate)
		}
	}
	if sc.DosesPerTime < 0 || sc.DosesPerTime > 20 {
		bad("dosesPerTime %d must be 0..20 (0 means 1)", sc.DosesPerTime)
	}
	if sc.DosesPerTime == 0 {
		sc.DosesPerTime = 1
	}
	for name, v := range map[string]int32{"graceMinutes": sc.GraceMinutes, "lateWindowMinutes": sc.LateWindowMinutes, "earlyWindowMinutes": sc.EarlyWindowMinutes} {
		if v < 0 || v > 24*60 {
			bad("%s %d must be 0..1440", name, v)
		}
	}
	// The processors refuse a window shorter than the grace period, zeros
	// standing for their defaults (schemas/dose).
	for _, err := range dose.CheckWindows(sc.GraceMinutes, sc.EarlyWindowMinutes, sc.LateWindowMinutes) {
		bad("%v", err)
	}
	if len(sc.MedicationName) > 256 {
		bad("medicationName is longer than 256 characters")
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return errf(http.StatusBadRequest, "invalid schedule: %s", strings.Join(problems, "; "))
	}
	return nil
}

// scheduleResult is the response of a schedule write.
type scheduleResult struct {
	Schedule json.RawMessage `json:"schedule"`
	// CommandID is the UPDATE_SCHEDULE command sent to the schedule's
	// device; null when the schedule names no device.
	CommandID *string `json:"commandId"`
}

func (s *Server) createSchedule(rc *reqCtx) (int, any, error) {
	sc, err := s.parseSchedule(rc.body)
	if err != nil {
		return 0, nil, err
	}
	return s.publishSchedule(rc, sc, http.StatusCreated)
}

func (s *Server) updateSchedule(rc *reqCtx) (int, any, error) {
	patient, err := rc.pathID("patientId")
	if err != nil {
		return 0, nil, err
	}
	med, err := rc.pathID("medicationId")
	if err != nil {
		return 0, nil, err
	}
	// The path names the schedule; the body may repeat the ids but must
	// not contradict them.
	var ids struct {
		PatientID    string `json:"patientId"`
		MedicationID string `json:"medicationId"`
	}
	_ = json.Unmarshal(rc.body, &ids)
	if ids.PatientID == "" || ids.MedicationID == "" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(rc.body, &m); err != nil || m == nil { // null decodes to a nil map
			return 0, nil, errf(http.StatusBadRequest, "request body must be a DoseSchedule JSON object")
		}
		if ids.PatientID == "" {
			m["patientId"], _ = json.Marshal(patient)
		}
		if ids.MedicationID == "" {
			m["medicationId"], _ = json.Marshal(med)
		}
		rc.body, _ = json.Marshal(m)
	}
	sc, err := s.parseSchedule(rc.body)
	if err != nil {
		return 0, nil, err
	}
	if sc.PatientId != patient || sc.MedicationId != med {
		return 0, nil, errf(http.StatusBadRequest, "body names %s|%s but the path names %s|%s", sc.PatientId, sc.MedicationId, patient, med)
	}
	return s.publishSchedule(rc, sc, http.StatusOK)
}

func (s *Server) deleteSchedule(rc *reqCtx) (int, any, error) {
	patient, err := rc.pathID("patientId")
	if err != nil {
		return 0, nil, err
	}
	med, err := rc.pathID("medicationId")
	if err != nil {
		return 0, nil, err
	}
	device, err := rc.queryID("deviceId")
	if err != nil {
		return 0, nil, err
	}
	// The processors validate a deleted version like any other (a zone
	// and a start date are required); neither matters for a deletion.
	sc := &pb.DoseSchedule{PatientId: patient, MedicationId: med, DeviceId: device, Deleted: true,
		Timezone: "UTC", StartDate: s.now().UTC().Format(time.DateOnly)}
	return s.publishSchedule(rc, sc, http.StatusOK)
}

// publishSchedule writes the schedule (versioned now) and, when it names a
// device, an UPDATE_SCHEDULE command carrying it. Both go in one
// ProduceSync so that a failure is reported for the pair.
func (s *Server) publishSchedule(rc *reqCtx, sc *pb.DoseSchedule, status int) (int, any, error) {
	if err := s.checkPatient(rc, sc.PatientId); err != nil {
		return 0, nil, err
	}
	if sc.DeviceId != "" {
		if err := s.checkDevice(rc, sc.DeviceId); err != nil {
			return 0, nil, err
		}
	}
	sc.Meta = rc.meta()
	sc.Version = s.nextVersion()
	recs := []Record{{Topic: s.topics.Schedules, Key: topics.ScheduleKey(sc.PatientId, sc.MedicationId), Value: sc}}
	res := scheduleResult{Schedule: pbJSON(sc)}
	if sc.DeviceId != "" {
		cmd := s.newCommand(rc, sc.DeviceId, pb.CommandType_UPDATE_SCHEDULE, string(res.Schedule), 0)
		recs = append(recs, Record{Topic: s.topics.Commands, Key: cmd.DeviceId, Value: cmd})
		res.CommandID = &cmd.CommandId
	}
	if err := rc.publish(recs...); err != nil {
		return 0, nil, err
	}
	return status, res, nil
}

// --- device commands and shadows ---

// checkPatient refuses a schedule write for a patient known under another
// tenant, with the 404 a patient that does not exist would get, so that one
// hospital can neither replace another's schedules nor learn its patient
// ids. A patient known nowhere yet is the caller's to schedule.
func (s *Server) checkPatient(rc *reqCtx, patient string) error {
	ctx, cancel := rc.query()
	defer cancel()
	elsewhere, err := s.store.PatientElsewhere(ctx, rc.p.Tenant, patient)
	if err != nil {
		return storeErr(err)
	}
	if elsewhere {
		return errf(http.StatusNotFound, "unknown patient")
	}
	return nil
}

// checkDevice enforces api.require_known_device for a write addressed to
// device.
func (s *Server) checkDevice(rc *reqCtx, device string) error {
	if !s.cfg.RequireKnownDevice {
		return nil
	}
	ctx, cancel := rc.query()
	defer cancel()
	known, err := s.store.DeviceKnown(ctx, rc.p.Tenant, device)
	if err != nil {
		return storeErr(err)
	}
	if !known {
		return errf(http.StatusNotFound, "device %s has never reported in tenant %s", device, rc.p.Tenant)
	}
	return nil
}

func (s *Server) newCommand(rc *reqCtx, device string, typ pb.CommandType, payload string, timeout time.Duration) *pb.DeviceCommand {
	if timeout <= 0 {
		timeout = s.cfg.CommandTimeout.D()
	}
	m := rc.meta()
	return &pb.DeviceCommand{Meta: m, CommandId: m.EventId, DeviceId: device, CommandType: typ, PayloadJson: payload,
		IssuedBy: rc.p.User, State: pb.CommandState_COMMAND_PENDING, TimeoutMs: timeout.Milliseconds(), Version: 1}
}

// commandRequest is the body of POST /devices/{deviceId}/commands.
type commandRequest struct {
	CommandType string          `json:"commandType"`
	Payload     json.RawMessage `json:"payload"`
	TimeoutMs   int64           `json:"timeoutMs"`
}

func (s *Server) sendCommand(rc *reqCtx) (int, any, error) {
	device, err := rc.pathID("deviceId")
	if err != nil {
		return 0, nil, err
	}
	var req commandRequest
	if err := decodeStrict(rc.body, &req); err != nil {
		return 0, nil, err
	}
	v, ok := pb.CommandType_value[req.CommandType]
	typ := pb.CommandType(v)
	if !ok || typ == pb.CommandType_COMMAND_TYPE_UNSPECIFIED {
		return 0, nil, errf(http.StatusBadRequest, "commandType %q is not one of TRIGGER_REMINDER, PING, FACTORY_RESET, EMERGENCY_MODE, SECURE_DEVICE", req.CommandType)
	}
	if !rc.p.Has(commandRoles[typ]...) {
		return 0, nil, errf(http.StatusForbidden, "role %s may not send %s (needs one of %s)", rc.p.RoleString(), req.CommandType, joinComma(commandRoles[typ]))
	}
	if typ == pb.CommandType_UPDATE_SCHEDULE {
		// A schedule reaches its device only through the schedules
		// endpoints: they validate it (times, zone, windows: schemas/dose),
		// refuse another tenant's patient, and publish the DoseSchedule the
		// processors track adherence against together with the command. A
		// raw payload here skipped all three.
		return 0, nil, errf(http.StatusBadRequest, "UPDATE_SCHEDULE is sent by the schedules endpoints (POST /api/v1/schedules, PUT or DELETE /api/v1/schedules/{patientId}/{medicationId} with the deviceId), which validate and record the schedule")
	}
	payload := "{}"
	if len(req.Payload) > 0 && string(req.Payload) != "null" {
		var obj map[string]any
		if err := json.Unmarshal(req.Payload, &obj); err != nil {
			return 0, nil, errf(http.StatusBadRequest, "payload must be a JSON object")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, req.Payload); err != nil {
			return 0, nil, errf(http.StatusBadRequest, "payload must be a JSON object")
		}
		payload = buf.String()
	}
	if req.TimeoutMs < 0 || req.TimeoutMs > (24*time.Hour).Milliseconds() {
		return 0, nil, errf(http.StatusBadRequest, "timeoutMs %d must be 0..86400000 (0: the default %s)", req.TimeoutMs, s.cfg.CommandTimeout.D())
	}
	if err := s.checkDevice(rc, device); err != nil {
		return 0, nil, err
	}
	cmd := s.newCommand(rc, device, typ, payload, time.Duration(req.TimeoutMs)*time.Millisecond)
	if err := rc.publish(Record{Topic: s.topics.Commands, Key: device, Value: cmd}); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, map[string]any{"commandId": cmd.CommandId, "command": pbJSON(cmd)}, nil
}

func (s *Server) listCommands(rc *reqCtx) (int, any, error) {
	device, err := rc.pathID("deviceId")
	if err != nil {
		return 0, nil, err
	}
	limit, err := rc.limit(50, 1000)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	cmds, err := s.store.Commands(ctx, rc.p.Tenant, device, limit)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, listBody("commands", cmds), nil
}

func (s *Server) patientSchedules(rc *reqCtx) (int, any, error) {
	patient, err := rc.pathID("patientId")
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	scheds, err := s.store.Schedules(ctx, rc.p.Tenant, patient)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, listBody("schedules", scheds), nil
}

func (s *Server) getShadow(rc *reqCtx) (int, any, error) {
	device, err := rc.pathID("deviceId")
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	sh, err := s.store.Shadow(ctx, rc.p.Tenant, device)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, pbJSON(sh), nil
}

// storeErr keeps ErrNotFound and wraps everything else as errStore.
func storeErr(err error) error {
	if errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: %w", errStore, err)
}

func (s *Server) putShadowDesired(rc *reqCtx) (int, any, error) {
	device, err := rc.pathID("deviceId")
	if err != nil {
		return 0, nil, err
	}
	var req struct {
		Desired map[string]any `json:"desired"`
	}
	if err := decodeStrict(rc.body, &req); err != nil {
		return 0, nil, err
	}
	if len(req.Desired) == 0 {
		return 0, nil, errf(http.StatusBadRequest, "desired must be a non-empty JSON object")
	}
	if len(req.Desired) > 256 {
		return 0, nil, errf(http.StatusBadRequest, "desired has %d keys; at most 256", len(req.Desired))
	}
	desired, err := structpb.NewStruct(req.Desired)
	if err != nil {
		return 0, nil, errf(http.StatusBadRequest, "desired: %v", err)
	}
	if err := s.checkDevice(rc, device); err != nil {
		return 0, nil, err
	}
	m := rc.meta()
	sh := &pb.DeviceShadow{Meta: m, DeviceId: device, Desired: desired, DesiredUpdatedMs: m.EventTimeMs}
	if err := rc.publish(Record{Topic: s.topics.ShadowDesired, Key: device, Value: sh}); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, map[string]any{"deviceId": device, "desired": pbJSON(desired), "eventId": m.EventId}, nil
}

// --- alerts ---

func parseEnums[T ~int32](rc *reqCtx, name string, values map[string]int32) ([]T, error) {
	v := rc.r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	var out []T
	for _, part := range strings.Split(v, ",") {
		n, ok := values[strings.TrimSpace(part)]
		if !ok || n == 0 {
			return nil, errf(http.StatusBadRequest, "query %s: %q is not a known value", name, part)
		}
		out = append(out, T(n))
	}
	return out, nil
}

func (rc *reqCtx) alertFilter() (AlertFilter, error) {
	var f AlertFilter
	var err error
	if f.States, err = parseEnums[pb.AlertState](rc, "state", pb.AlertState_value); err != nil {
		return f, err
	}
	if f.Types, err = parseEnums[pb.AlertType](rc, "type", pb.AlertType_value); err != nil {
		return f, err
	}
	if f.Ward, err = rc.queryID("ward"); err != nil {
		return f, err
	}
	if f.PatientID, err = rc.queryID("patientId"); err != nil {
		return f, err
	}
	if f.DeviceID, err = rc.queryID("deviceId"); err != nil {
		return f, err
	}
	if f.Since, err = rc.timeParam("since", time.Time{}); err != nil {
		return f, err
	}
	f.Limit, err = rc.limit(100, 1000)
	return f, err
}

func (s *Server) listAlerts(rc *reqCtx) (int, any, error) {
	f, err := rc.alertFilter()
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	alerts, err := s.store.Alerts(ctx, rc.p.Tenant, f)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, listBody("alerts", alerts), nil
}

func (s *Server) getAlert(rc *reqCtx) (int, any, error) {
	id, err := rc.alertID()
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	a, err := s.store.Alert(ctx, rc.p.Tenant, id)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, pbJSON(a), nil
}

// ackResult is the response of an acknowledgement.
type ackResult struct {
	AlertID string `json:"alertId"`
	// AckEventID is the published AlertAck's event id ("" when the alert
	// was already acknowledged and nothing was published).
	AckEventID string `json:"ackEventId,omitempty"`
	// State is the alert's state once the acknowledgement is applied.
	State string `json:"state"`
	// AlreadyAcknowledged is true when the alert was acknowledged before.
	AlreadyAcknowledged bool            `json:"alreadyAcknowledged"`
	Alert               json.RawMessage `json:"alert"`
}

func (s *Server) ackAlert(rc *reqCtx) (int, any, error) {
	id, err := rc.alertID()
	if err != nil {
		return 0, nil, err
	}
	var req struct {
		Note string `json:"note"`
	}
	if len(bytes.TrimSpace(rc.body)) > 0 {
		if err := decodeStrict(rc.body, &req); err != nil {
			return 0, nil, err
		}
	}
	if len(req.Note) > 1000 {
		return 0, nil, errf(http.StatusBadRequest, "note is longer than 1000 characters")
	}
	// Look the alert up first: it proves the alert belongs to the caller's
	// tenant (acks are keyed by alert id only) and gives the version the
	// acknowledged copy supersedes.
	ctx, cancel := rc.query()
	defer cancel()
	a, err := s.store.Alert(ctx, rc.p.Tenant, id)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	switch a.State {
	case pb.AlertState_ACKNOWLEDGED:
		return http.StatusOK, ackResult{AlertID: id, State: a.State.String(), AlreadyAcknowledged: true, Alert: pbJSON(a)}, nil
	case pb.AlertState_RESOLVED:
		return 0, nil, errf(http.StatusConflict, "alert %s is already resolved", id)
	}
	m := rc.meta()
	ack := &pb.AlertAck{Meta: m, AlertId: id, User: rc.p.User, Note: req.Note}
	recs := []Record{{Topic: s.topics.AlertAcks, Key: id, Value: ack}}
	acked := ackedCopy(a, rc.p.Tenant, rc.p.User, m.EventTimeMs)
	if s.cfg.PublishAckedAlert {
		recs = append(recs, Record{Topic: s.topics.Alerts, Key: alertKey(acked), Value: acked})
	}
	if err := rc.publish(recs...); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, ackResult{AlertID: id, AckEventID: m.EventId, State: pb.AlertState_ACKNOWLEDGED.String(), Alert: pbJSON(acked)}, nil
}

// ackedCopy returns the ACKNOWLEDGED version that supersedes a. Its event
// id is derived from the alert id and version, so that if the alerts
// processor emits the same transition the sink sees one version, not two.
func ackedCopy(a *pb.Alert, tenant, user string, nowMs int64) *pb.Alert {
	c := &pb.Alert{
		Meta:    &pb.Meta{Tenant: tenant, EventTimeMs: nowMs, IngestTimeMs: nowMs, Source: "api"},
		AlertId: a.AlertId, AlertType: a.AlertType, Priority: a.Priority, State: pb.AlertState_ACKNOWLEDGED,
		SubjectType: a.SubjectType, SubjectId: a.SubjectId, PatientId: a.PatientId, DeviceId: a.DeviceId,
		MedicationId: a.MedicationId, Message: a.Message, Version: a.Version + 1, OpenedTimeMs: a.OpenedTimeMs,
		AckedTimeMs: nowMs, ResolvedTimeMs: a.ResolvedTimeMs, EscalationLevel: a.EscalationLevel, AckedBy: user,
		Ward: a.Ward, CameraId: a.CameraId,
	}
	c.Meta.EventId = fmt.Sprintf("%s:v%d", a.AlertId, c.Version)
	return c
}

// alertKey is the alerts topic key (the subject id, per the catalog).
func alertKey(a *pb.Alert) string {
	if a.SubjectId != "" {
		return a.SubjectId
	}
	return a.AlertId
}

// --- adherence and missed doses ---

func (s *Server) patientAdherence(rc *reqCtx) (int, any, error) {
	patient, err := rc.pathID("patientId")
	if err != nil {
		return 0, nil, err
	}
	from, to, err := rc.dayRange()
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	rows, err := s.store.PatientAdherence(ctx, rc.p.Tenant, patient, from, to)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, map[string]any{"patientId": patient, "from": from.Format(time.DateOnly), "to": to.Format(time.DateOnly), "adherence": pbList(rows)}, nil
}

func (s *Server) wardAdherenceFor(rc *reqCtx, ward string) (int, any, error) {
	from, to, err := rc.dayRange()
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	rows, err := s.store.WardAdherence(ctx, rc.p.Tenant, ward, from, to)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	if rows == nil {
		rows = []WardAdherence{}
	}
	return http.StatusOK, map[string]any{"from": from.Format(time.DateOnly), "to": to.Format(time.DateOnly), "wards": rows}, nil
}

func (s *Server) wardsAdherence(rc *reqCtx) (int, any, error) { return s.wardAdherenceFor(rc, "") }

func (s *Server) wardAdherence(rc *reqCtx) (int, any, error) {
	ward, err := rc.pathID("ward")
	if err != nil {
		return 0, nil, err
	}
	return s.wardAdherenceFor(rc, ward)
}

func (s *Server) missedDoses(rc *reqCtx, f DoseFilter) (int, any, error) {
	now := s.now()
	var err error
	if f.From, err = rc.timeParam("from", now.Add(-7*24*time.Hour)); err != nil {
		return 0, nil, err
	}
	if f.To, err = rc.timeParam("to", now.Add(time.Minute)); err != nil {
		return 0, nil, err
	}
	if isDate(rc.r.URL.Query().Get("to")) {
		// A date as to includes that day, as on the adherence routes:
		// from=D&to=D is day D. The bound is the next day's midnight.
		f.To = f.To.AddDate(0, 0, 1)
	}
	if !f.From.Before(f.To) {
		return 0, nil, errf(http.StatusBadRequest, "from must be before to")
	}
	if f.Limit, err = rc.limit(200, 5000); err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	rows, err := s.store.MissedDoses(ctx, rc.p.Tenant, f)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, map[string]any{"from": f.From.UTC().Format(time.RFC3339), "to": f.To.UTC().Format(time.RFC3339), "missedDoses": pbList(rows)}, nil
}

func (s *Server) patientMissedDoses(rc *reqCtx) (int, any, error) {
	patient, err := rc.pathID("patientId")
	if err != nil {
		return 0, nil, err
	}
	return s.missedDoses(rc, DoseFilter{PatientID: patient})
}

func (s *Server) wardMissedDoses(rc *reqCtx) (int, any, error) {
	ward, err := rc.pathID("ward")
	if err != nil {
		return 0, nil, err
	}
	return s.missedDoses(rc, DoseFilter{Ward: ward})
}

// --- vitals anomalies, camera events ---

func (s *Server) listAnomalies(rc *reqCtx) (int, any, error) {
	f := AnomalyFilter{MinScore: 5}
	if v := rc.r.URL.Query().Get("minScore"); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 || x > 10 {
			return 0, nil, errf(http.StatusBadRequest, "query minScore %q must be a number in 0..10", v)
		}
		f.MinScore = x
	}
	var err error
	if f.Ward, err = rc.queryID("ward"); err != nil {
		return 0, nil, err
	}
	if f.Since, err = rc.timeParam("since", s.now().Add(-24*time.Hour)); err != nil {
		return 0, nil, err
	}
	if f.Limit, err = rc.limit(100, 1000); err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	rows, err := s.store.Anomalies(ctx, rc.p.Tenant, f)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, listBody("anomalies", rows), nil
}

func (s *Server) listCameraEvents(rc *reqCtx) (int, any, error) {
	since, err := rc.timeParam("since", s.now().Add(-24*time.Hour))
	if err != nil {
		return 0, nil, err
	}
	limit, err := rc.limit(100, 1000)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	rows, err := s.store.CameraEvents(ctx, rc.p.Tenant, since, limit)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, listBody("cameraEvents", rows), nil
}

// --- audit ---

func (s *Server) listAudit(rc *reqCtx) (int, any, error) {
	since, err := rc.timeParam("since", s.now().Add(-7*24*time.Hour))
	if err != nil {
		return 0, nil, err
	}
	user := rc.r.URL.Query().Get("user")
	if user != "" && (len(user) > 256 || strings.ContainsAny(user, "\x00\n")) {
		return 0, nil, errf(http.StatusBadRequest, "query user is not a user name")
	}
	limit, err := rc.limit(100, 1000)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := rc.query()
	defer cancel()
	rows, err := s.store.Audit(ctx, rc.p.Tenant, user, since, limit)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	return http.StatusOK, listBody("audit", rows), nil
}

// --- pipeline health and dashboard ---

func (s *Server) pipelineHealth(rc *reqCtx) (int, any, error) {
	return http.StatusOK, s.monitor.snapshot(), nil
}

func (s *Server) getDashboard(rc *reqCtx) (int, any, error) {
	return http.StatusOK, s.dashboard(rc.r.Context(), rc.p.Tenant), nil
}
