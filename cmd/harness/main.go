// Command harness is havoc's one binary: run a scenario in the simulator, sweep
// seeds, check a history file, and (with later subcommands) serve a store member.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	// The simulator allocates many short-lived objects; a larger GC target trades
	// memory (a few hundred MB per run) for ~15% less wall time. GOGC overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	root := &cobra.Command{
		Use:           "harness",
		Short:         "havoc: a test harness and simulator for the high availability of an etcd-style store",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuProfile string
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file (for go tool pprof)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
	defer pprof.StopCPUProfile()
	root.AddCommand(newRunCmd(), newSweepCmd(), newSweepWorkerCmd(), newCheckCmd(), newServeCmd(), newSnapshotCmd(), newDrillCmd(), newDockerCmd())
	err := root.Execute()
	pprof.StopCPUProfile()
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(2)
	}
}
