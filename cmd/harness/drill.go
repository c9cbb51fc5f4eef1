package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/scenarios"
)

// newDrillCmd is `harness drill NAME`: a named backup and recovery drill in the
// simulator (scenarios.RunDrill).
func newDrillCmd() *cobra.Command {
	var c scenarios.DrillConfig
	var faults string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "drill NAME",
		Short: "Run a backup/recovery drill in the simulator: " + strings.Join(scenarios.DrillNames, ", "),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds, err := chaos.ParseKinds(faults)
			if err != nil {
				return err
			}
			c.Faults = kinds
			if c.Seed == 0 {
				c.Seed = freshSeed()
			}
			r, err := scenarios.RunDrill(args[0], c)
			if err != nil {
				return err
			}
			if asJSON {
				b, _ := json.MarshalIndent(r, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			if !r.Passed() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Uint64Var(&c.Seed, "seed", 0, "seed of the drill (0 = draw one)")
	fl.IntVar(&c.Members, "nodes", 3, "cluster members")
	fl.DurationVar(&c.Duration, "duration", 10*time.Second, "virtual load phase before (and around) the save")
	fl.DurationVar(&c.After, "after", 5*time.Second, "virtual time the restored cluster serves the workload")
	fl.StringVar(&faults, "faults", "none", "fault kinds during the save-restore load phase: all, none, or a comma list")
	fl.IntVar(&c.Workload.Clients, "clients", 16, "concurrent client sessions")
	fl.Float64Var(&c.Workload.Rate, "rate", 1000, "offered load, operations per virtual second")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
