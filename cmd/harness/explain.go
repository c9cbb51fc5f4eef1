package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/scenarios/explain"
)

func newExplainCmd() *cobra.Command {
	var out string
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "explain DIR",
		Short: "Show what happened in a failing run: an HTML page and a text summary from its artifacts directory",
		Long: `Show what happened in a run from its artifacts directory (a run's --out/seed-N, kept with --keep):
the history is checked again, and the operations of the failing keys within --window of the first
operation that cannot be linearized are drawn on a time axis, one row per client, each labelled with
the member that served it; fault windows are shaded bands, leader changes and member crashes,
restarts and pauses are markers (from the trace). The page (self-contained HTML, DIR/explain.html
unless --html says otherwise) links Porcupine's visualization.html when the run wrote one, and
explain-porcupine.html beside the page: Porcupine's visualization of the failing partition with the
fault windows as annotations. The text summary goes to standard output. Exit 0 when the page was written, 2 when DIR is not a run directory.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if window <= 0 {
				return usageError(fmt.Errorf("--window %s: must be positive", window))
			}
			run, err := explain.Load(dir)
			if err != nil {
				return usageError(err)
			}
			if out == "" {
				out = filepath.Join(dir, "explain.html")
			}
			porcupine := filepath.Join(filepath.Dir(out), "explain-porcupine.html")
			rep, err := explain.Build(run, explain.Options{Window: window, Porcupine: porcupine})
			if err != nil {
				return usageError(err)
			}
			// Link Porcupine's pages from wherever this one is written.
			if run.Visualization != "" {
				if rel, err := filepath.Rel(filepath.Dir(out), filepath.Join(dir, run.Visualization)); err == nil {
					rep.Visualization = rel
				}
			}
			if rep.Porcupine != "" {
				rep.Porcupine = filepath.Base(rep.Porcupine)
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := rep.HTML(f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := rep.Text(cmd.OutOrStdout()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "page: %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "html", "", "write the page here (default DIR/explain.html)")
	cmd.Flags().DurationVar(&window, "window", explain.DefaultWindow, "time shown on each side of the failing operation")
	return cmd
}
