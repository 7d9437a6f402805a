package schedule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"

	"gopkg.in/yaml.v3"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// File is the schedule file `wardstream schedules apply` reads (see the
// package doc for the format).
type File struct {
	// Tenant overrides the topology's tenant for every schedule in the file.
	Tenant    string      `yaml:"tenant"`
	Schedules []FileEntry `yaml:"schedules"`
}

// FileEntry is one schedule in a [File].
type FileEntry struct {
	PatientID          string   `yaml:"patient_id"`
	MedicationID       string   `yaml:"medication_id"`
	MedicationName     string   `yaml:"medication_name"`
	DeviceID           string   `yaml:"device_id"`
	Ward               string   `yaml:"ward"`
	Timezone           string   `yaml:"timezone"`
	Times              []string `yaml:"times"`
	DaysOfWeek         []int32  `yaml:"days_of_week"`
	StartDate          string   `yaml:"start_date"`
	EndDate            string   `yaml:"end_date"`
	DosesPerTime       int32    `yaml:"doses_per_time"`
	GraceMinutes       int32    `yaml:"grace_minutes"`
	EarlyWindowMinutes int32    `yaml:"early_window_minutes"`
	LateWindowMinutes  int32    `yaml:"late_window_minutes"`
	Version            int64    `yaml:"version"`
	Deleted            bool     `yaml:"deleted"`
}

// Proto returns the entry as a DoseSchedule with explicit defaults.
func (e FileEntry) Proto() *pb.DoseSchedule {
	s := &pb.DoseSchedule{
		PatientId: e.PatientID, MedicationId: e.MedicationID, MedicationName: e.MedicationName,
		DeviceId: e.DeviceID, Ward: e.Ward, Timezone: e.Timezone, Times: e.Times, DaysOfWeek: e.DaysOfWeek,
		StartDate: e.StartDate, EndDate: e.EndDate, DosesPerTime: e.DosesPerTime, GraceMinutes: e.GraceMinutes,
		EarlyWindowMinutes: e.EarlyWindowMinutes, LateWindowMinutes: e.LateWindowMinutes, Version: e.Version, Deleted: e.Deleted,
	}
	if s.DosesPerTime == 0 {
		s.DosesPerTime = 1
	}
	if s.GraceMinutes == 0 {
		s.GraceMinutes = DefaultGraceMinutes
	}
	if s.EarlyWindowMinutes == 0 {
		s.EarlyWindowMinutes = DefaultEarlyMinutes
	}
	if s.LateWindowMinutes == 0 {
		s.LateWindowMinutes = DefaultLateMinutes
	}
	return s
}

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// ParseFile strictly decodes a schedule file (unknown keys are errors) and
// validates every entry; all problems are returned at once, each prefixed
// with "schedules[i]".
func ParseFile(r io.Reader) (*File, []*pb.DoseSchedule, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading schedule file: %w", err)
	}
	// Every document of the file ("---" separated) is read; an unknown or
	// mistyped key is reported with the entries' own problems, not
	// instead of them.
	var f File
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	for {
		var doc File
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		var te *yaml.TypeError
		switch {
		case errors.As(err, &te):
			for _, m := range te.Errors {
				errs = append(errs, errors.New(unknownField.ReplaceAllString(m, "line $1: unknown field $2")))
			}
		case err != nil:
			return nil, nil, fmt.Errorf("parsing schedule file: %w", err)
		}
		switch {
		case f.Tenant == "":
			f.Tenant = doc.Tenant
		case doc.Tenant != "" && doc.Tenant != f.Tenant:
			errs = append(errs, fmt.Errorf("tenant: the file's documents name tenants %q and %q", f.Tenant, doc.Tenant))
		}
		f.Schedules = append(f.Schedules, doc.Schedules...)
	}
	if len(f.Schedules) == 0 {
		return nil, nil, errors.Join(append(errs, errors.New("schedule file lists no schedules"))...)
	}
	seen := map[string]int{}
	out := make([]*pb.DoseSchedule, 0, len(f.Schedules))
	for i, e := range f.Schedules {
		s := e.Proto()
		if _, err := Parse(s); err != nil {
			errs = append(errs, fmt.Errorf("schedules[%d]: %w", i, err))
		}
		k := e.PatientID + "|" + e.MedicationID
		if j, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("schedules[%d]: %s repeats schedules[%d] (one entry per patient and medication)", i, k, j))
		}
		seen[k] = i
		out = append(out, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return &f, out, nil
}
