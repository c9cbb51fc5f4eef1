package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/linearizability"
	"github.com/havoclab/havoc/scenarios/explain"
)

func newTraceCmd() *cobra.Command {
	var f explain.Filter
	var grep string
	cmd := &cobra.Command{
		Use:   "trace DIR|FILE",
		Short: "Print a run's trace filtered by member, key, time window and pattern",
		Long: `Print the lines of a run's trace (DIR/trace.log.gz, or a trace file, compressed or not) that
every given filter keeps, streaming: --member keeps that member's lines and the lines naming it,
--key the lines containing the key and, from DIR's history, the lines of the clients' requests on
it while they were outstanding; --from and --to bound the virtual time (reading stops past --to);
--grep keeps lines matching a regular expression. Exit 0 (also when no line matched: standard
error says so), 2 for a missing file or a bad flag.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			st, err := os.Stat(path)
			if err != nil {
				return usageError(err)
			}
			if f.From < 0 || f.To < 0 || f.To > 0 && f.To < f.From {
				return usageError(fmt.Errorf("--from %s --to %s: not a time window", f.From, f.To))
			}
			if grep != "" {
				if f.Grep, err = regexp.Compile(grep); err != nil {
					return usageError(fmt.Errorf("--grep: %w", err))
				}
			}
			if st.IsDir() {
				if f.Key != "" {
					if ops, err := readRunHistory(filepath.Join(path, explain.HistoryFile)); err == nil {
						f.UseHistory(ops)
					}
				}
				path = filepath.Join(path, explain.TraceFile)
			}
			in, err := os.Open(path)
			if err != nil {
				return usageError(err)
			}
			defer in.Close()
			n, err := explain.FilterTrace(in, cmd.OutOrStdout(), &f)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if n == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "harness: no line of %s matched\n", path)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.Member, "member", "", "keep the lines of this member (m1, m2, ...) and those naming it")
	cmd.Flags().StringVar(&f.Key, "key", "", "keep the lines of requests on this key")
	cmd.Flags().DurationVar(&f.From, "from", 0, "keep lines at or after this virtual time")
	cmd.Flags().DurationVar(&f.To, "to", 0, "keep lines at or before this virtual time (0: to the end)")
	cmd.Flags().StringVar(&grep, "grep", "", "keep lines matching this regular expression")
	return cmd
}

// readRunHistory reads a run directory's history.json.gz.
func readRunHistory(path string) ([]linearizability.Operation, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	return explain.ReadHistory(in)
}
