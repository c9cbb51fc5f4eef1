// Command harness is havoc's one binary: run a scenario in the simulator, sweep
// seeds, check a history file, run drills, and serve a store member.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

func main() {
	// The simulator allocates many short-lived objects; a larger GC target trades
	// memory (a few hundred MB per run) for ~15% less wall time. GOGC overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the harness with args and returns its exit code (see exitCodes).
func execute(args []string, stdout, stderr io.Writer) int {
	root, started, stop := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	stop()
	code := exitCodeOf(err, *started)
	if err != nil && err.Error() != "" {
		var ee *exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(stderr, err)
		} else {
			fmt.Fprintln(stderr, "harness:", err)
		}
	}
	return code
}

// newRoot builds the harness command. started reports whether a command's
// RunE was reached; stop ends a CPU profile.
func newRoot() (root *cobra.Command, started *bool, stop func()) {
	root = &cobra.Command{
		Use:   "harness",
		Short: "havoc: a test harness and simulator for the high availability of an etcd-style store",
		Long: "havoc: a test harness and simulator for the high availability of an etcd-style store.\n\n" +
			exitCodeTable() + "  (serve follows etcd: 1 when it refuses to start, 2 for bad flags)",
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	var cpuProfile string
	started = new(bool)
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file (for go tool pprof)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		*started = true
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return usageError(err)
		}
		return pprof.StartCPUProfile(f)
	}
	root.AddCommand(newRunCmd(), newSweepCmd(), newSweepWorkerCmd(), newCheckCmd(), newServeCmd(), newSnapshotCmd(), newDrillCmd(), newDockerCmd(), newBenchCmd(), newReportCmd(),
		newScenariosCmd(), newShrinkCmd(), newShrinkWorkerCmd())
	root.AddCommand(newExplainCmd(), newMutantsCmd())
	root.AddCommand(newTraceCmd())
	stop = func() {
		if cpuProfile != "" {
			pprof.StopCPUProfile()
		}
	}
	return root, started, stop
}
