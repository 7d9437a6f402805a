package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/wardstream/wardstream/pipelines/processors"
	"github.com/wardstream/wardstream/pipelines/schedule"
)

// cmdSchedules implements `wardstream schedules apply FILE.yaml`: it
// validates the schedule file (every problem at once) and publishes each
// schedule to the compacted schedule topic keyed "patientId|medicationId".
func cmdSchedules(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "apply" {
		return fmt.Errorf("%w: wardstream schedules apply FILE.yaml [--config F] [--dry-run] (see deploy/local/schedules.example.yaml)", errUsage)
	}
	fs := newFlags("schedules apply")
	cfgPath := configFlag(fs)
	dry := fs.Bool("dry-run", false, "validate the file and print what would be published; publish nothing")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	// FILE may come before or after the flags.
	var files []string
	rest := args[1:]
	for {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) != 1 {
		return fmt.Errorf("%w: schedules apply needs exactly one FILE.yaml", errUsage)
	}
	file := files[0]
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("opening schedule file: %w", err)
	}
	defer f.Close()
	sf, scheds, err := schedule.ParseFile(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	pcfg, err := processors.Load(e.cfg)
	if err != nil {
		return err
	}
	if *dry {
		for _, s := range scheds {
			fmt.Printf("%s|%s v%d %s %v days=%v %s..%s\n", s.PatientId, s.MedicationId, s.Version, s.Timezone, s.Times, s.DaysOfWeek, s.StartDate, s.EndDate)
		}
		fmt.Printf("%d schedules valid (dry run, nothing published)\n", len(scheds))
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	n, err := processors.PublishSchedules(ctx, e.cfg, pcfg, sf.Tenant, scheds)
	if err != nil {
		return err
	}
	fmt.Printf("published %d schedules (%d unchanged)\n", n, len(scheds)-n)
	return nil
}
