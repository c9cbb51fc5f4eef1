package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/havoclab/havoc/scenarios"
)

// The harness's exit codes, one table for every subcommand (serve excepted: it
// follows etcd, 1 for a refused start, 2 for bad flags).
const (
	exitOK           = 0 // the run, sweep, check or drill found nothing wrong
	exitViolation    = 1 // a safety or liveness violation: the run failed
	exitUsage        = 2 // bad flags, arguments or input; nothing was run
	exitInconclusive = 3 // the checker could not decide within its budget, or had nothing to decide
	exitInfra        = 4 // the harness itself failed: a backend did not start, a file could not be written
)

// exitCodes is the table printed by --help and kept in step with README.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "ok: nothing wrong found"},
	{exitViolation, "violation: a run, seed, history or drill failed its check"},
	{exitUsage, "usage: bad flags, arguments or input file; nothing was run"},
	{exitInconclusive, "inconclusive: the checker could not decide within its work budget (or had no completed operation to check)"},
	{exitInfra, "infrastructure error: the harness could not do its job (backend, engine, disk)"},
}

// exitCodeTable renders exitCodes for --help.
func exitCodeTable() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.code, e.meaning)
	}
	return b.String()
}

// exitError carries a process exit code (and an optional message for stderr)
// through cobra.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError marks err as a usage error (exit 2).
func usageError(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitUsage, msg: "harness: " + err.Error()}
}

// exitCodeOf maps the error a command returned to the process exit code.
// started tells whether a command's RunE was reached: errors before it (flag
// parsing, argument counts, unknown commands) are usage errors, unmarked errors
// after it are infrastructure errors.
func exitCodeOf(err error, started bool) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if !started {
		return exitUsage
	}
	return exitInfra
}

// version describes the binary: module version and VCS revision as recorded by
// the Go toolchain (absent when built with -buildvcs=false or by go run).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "harness (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	s := fmt.Sprintf("harness %s %s %s", bi.Main.Path, v, bi.GoVersion)
	var rev, at, dirty string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	if rev == "" {
		return s + " (no VCS information: built with -buildvcs=false or outside a repository)"
	}
	return fmt.Sprintf("%s vcs %s %s%s", s, rev, at, dirty)
}

// verdictExit maps a run's verdict to its exit code: ok 0, unknown (the
// checker's budget ran out) 3, a harness error 4, every other verdict 1.
func verdictExit(verdict string) int {
	switch verdict {
	case scenarios.VerdictOK:
		return exitOK
	case scenarios.VerdictInconclusive:
		return exitInconclusive
	case verdictError, verdictWorkerError:
		return exitInfra
	}
	return exitViolation
}

// worstExit is the exit code of a set of verdicts: a violation outranks an
// infrastructure error, which outranks an inconclusive check.
func worstExit(verdicts ...string) int {
	rank := map[int]int{exitOK: 0, exitInconclusive: 1, exitInfra: 2, exitViolation: 3}
	worst := exitOK
	for _, v := range verdicts {
		if c := verdictExit(v); rank[c] > rank[worst] {
			worst = c
		}
	}
	return worst
}
