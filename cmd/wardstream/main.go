// Command wardstream is the single wardstream binary. Each subcommand is one
// job: apply topics, migrate ClickHouse, run roles, tail a topic, bench.
// main only parses flags, loads the topology and wires roles; domain logic
// lives in connectors/, pipelines/, sinks/ and bench/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand.
type command struct {
	name  string
	usage string // one-line argument synopsis
	help  string // what it does
	run   func(ctx context.Context, args []string) error
}

// errUsage marks errors that are the user's invocation; exit code 2.
var errUsage = errors.New("usage")

func commands() []command {
	return []command{
		{"version", "", "Print the wardstream version.", cmdVersion},
		{"topics", "apply|list|manifest [flags]", "Create/update the Kafka topics of the topic catalog (apply), print them one per line (list), or as Strimzi KafkaTopic resources (manifest).", cmdTopics},
		{"migrate", "[flags]", "Apply the ClickHouse schema migrations (idempotent, ordered, version-aware).", cmdMigrate},
		{"run", "--roles mqtt,rtsp,processors,sink,api [flags]", "Run one or more roles until interrupted.", cmdRun},
		{"tail", "TOPIC [--from-beginning] [--max N] [--timeout D]", "Print the records of a catalog topic as JSON lines.", cmdTail},
		{"bench", "--scenario FILE [--duration D | --messages N] [--stage all|mqtt|kafka|sink] --out DIR", "Drive load through the pipeline and write results.json and results.md.", cmdBench},
		{"schedules", "apply FILE.yaml [flags]", "Publish dose schedules from a YAML file to the schedule topic.", cmdSchedules},
		{"validate", "FILE", "Validate a topology file fully; errors carry line numbers.", cmdValidate},
		{"shadow", "set DEVICE key=value... [--tenant T]", "Set a device's desired state; the mqtt role versions the shadow and pushes the delta to the device.", cmdShadow},
		{"embedded-kafka", "[--listen 127.0.0.1:9092] [--data-dir DIR]", "Run an embedded Kafka-protocol broker (franz-go kfake, not Apache Kafka) for machines without Java: the demo's --embedded path.", cmdEmbeddedKafka},
		{"token", "[--role admin|medical_staff|analyst] [--tenant T] [--user U] [--ttl D] [--url]", "Mint a bearer token for the API with the demo signing key (api.auth.demo_key_file).", cmdToken},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "wardstream: medical-IoT and video analytics on Kafka, goka and ClickHouse.")
	fmt.Fprintln(w, "\nUsage: wardstream COMMAND [flags]\n\nCommands:")
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.help)
	}
	fmt.Fprintln(w, "\nRun 'wardstream COMMAND --help' for a command's flags.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "wardstream %s: %s\n", c.name, strings.TrimSuffix(strings.TrimPrefix(err.Error(), "usage: "), ": usage"))
			return 2
		default:
			// One clear line: multi-error configs are joined with "; ".
			fmt.Fprintf(stderr, "wardstream %s: %s\n", c.name, strings.ReplaceAll(err.Error(), "\n", "; "))
			return 1
		}
	}
	fmt.Fprintf(stderr, "wardstream: unknown command %q (see wardstream --help)\n", args[0])
	return 2
}

// newFlags returns a FlagSet for command name whose --help prints the
// command's help and flags, and whose parse errors are usage errors.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args, printing help for --help and turning bad flags
// into one-line usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(fs)
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func printHelp(fs *flag.FlagSet) {
	for _, c := range commands() {
		if c.name == fs.Name() || strings.HasPrefix(fs.Name(), c.name+" ") {
			fmt.Fprintf(os.Stderr, "Usage: wardstream %s %s\n\n%s\n\nFlags:\n", fs.Name(), c.usage, c.help)
		}
	}
	fs.SetOutput(os.Stderr)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func cmdVersion(_ context.Context, args []string) error {
	fs := newFlags("version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Println("wardstream", version)
	return nil
}
