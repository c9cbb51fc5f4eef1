package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/linearizability"
)

// truncatedMark starts the line that ends a history cut at its size limit
// (scenarios.HistoryLimitBytes).
const truncatedMark = `{"truncated":true`

// errNotHistory reports a check input that is not a history at all.
var errNotHistory = errors.New("not a history")

func newCheckCmd() *cobra.Command {
	var budget int64
	var html string
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a history file (havoc JSON lines or a Jepsen etcd log) for linearizability",
		Long: `Check a history file for linearizability: havoc's JSON lines (history.json.gz of a run
directory, compressed or not) or a Jepsen etcd register log. Exit 0 when linearizable, 1 when not, 2 when
the file is empty or not a history, 3 when the checker ran out of its --budget or the
history has no completed operation to check.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if budget <= 0 {
				return usageError(fmt.Errorf("--budget %d: the checking budget must be positive", budget))
			}
			opt := linearizability.Options{Budget: budget, VisualizePath: html}
			res, err := checkFile(args[0], opt)
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
				return &exitError{code: exitViolation}
			default:
				return &exitError{code: exitInconclusive}
			}
		},
	}
	cmd.Flags().Int64Var(&budget, "budget", linearizability.DefaultBudget, "checking budget in model steps per partition (work, not time; positive); past it the verdict is inconclusive (exit 3)")
	cmd.Flags().StringVar(&html, "html", "", "write Porcupine's visualization here when the history is not linearizable (empty: none)")
	return cmd
}

// checkFile reads and checks one history file. A file that cannot be read,
// is empty or is not a history is a usage error (exit 2); a history without
// one operation that completed has nothing to check (exit 3).
func checkFile(path string, opt linearizability.Options) (linearizability.Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return linearizability.Result{}, usageError(err)
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) { // gzip, as a run directory's history.json.gz
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err == nil {
			data, err = io.ReadAll(zr)
		}
		if err != nil {
			return linearizability.Result{}, usageError(fmt.Errorf("%s: %w", path, err))
		}
	}
	first := firstLine(data)
	if first == nil {
		return linearizability.Result{}, usageError(fmt.Errorf("%s: %w: the file is empty", path, errNotHistory))
	}
	if bytes.Contains(data, []byte("\n"+truncatedMark)) || bytes.HasPrefix(first, []byte(truncatedMark)) {
		return linearizability.Result{}, &exitError{code: exitInconclusive,
			msg: fmt.Sprintf("harness: %s: the history was truncated at its size limit; a prefix cannot be checked (rerun the seed with its reproduce line)", path)}
	}
	noneCompleted := &exitError{code: exitInconclusive, msg: fmt.Sprintf("harness: %s: no completed operation: nothing to check", path)}
	if first[0] == '{' {
		ops, err := linearizability.ReadHistory(bytes.NewReader(data))
		if err != nil {
			return linearizability.Result{}, usageError(fmt.Errorf("%s: %w: %w", path, errNotHistory, err))
		}
		if !slices.ContainsFunc(ops, func(op linearizability.Operation) bool { return op.Outcome == linearizability.OutcomeOK }) {
			return linearizability.Result{}, noneCompleted
		}
		return linearizability.Check(ops, opt)
	}
	ops, err := linearizability.ReadJepsen(bytes.NewReader(data))
	if err != nil {
		return linearizability.Result{}, usageError(fmt.Errorf("%s: %w: %w", path, errNotHistory, err))
	}
	if len(ops) == 0 {
		return linearizability.Result{}, usageError(fmt.Errorf("%s: %w: neither havoc JSON lines nor a Jepsen etcd log", path, errNotHistory))
	}
	if !slices.ContainsFunc(ops, func(op linearizability.RegisterOp) bool { return op.Outcome == linearizability.OutcomeOK }) {
		return linearizability.Result{}, noneCompleted
	}
	return linearizability.CheckRegister(ops, opt)
}

// firstLine returns the first line of data that is not blank, trimmed, or nil.
func firstLine(data []byte) []byte {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			return line
		}
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return bytes.TrimSpace(data)[:1] // one line longer than the scanner's buffer
	}
	return nil
}
