package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/linearizability"
)

func newCheckCmd() *cobra.Command {
	var budget int64
	var html string
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a history file (havoc JSON lines or a Jepsen etcd log) for linearizability",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := linearizability.CheckFile(args[0], linearizability.Options{Budget: budget, VisualizePath: html})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%d operations, %d partitions, %s)\n", args[0], res.Verdict, res.Operations, res.Partitions, res.Elapsed.Round(time.Millisecond))
			if res.Reason != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "reason: %s\n", res.Reason)
			}
			switch res.Verdict {
			case linearizability.VerdictOK:
				return nil
			case linearizability.VerdictIllegal:
				if html != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "visualization: %s\n", html)
				}
				return &exitError{code: 1}
			default:
				return &exitError{code: 3}
			}
		},
	}
	cmd.Flags().Int64Var(&budget, "budget", linearizability.DefaultBudget, "checking budget in model steps per partition (work, not time); past it the verdict is inconclusive (exit 3)")
	cmd.Flags().StringVar(&html, "html", "", "write Porcupine's visualization here when the history is not linearizable")
	return cmd
}
