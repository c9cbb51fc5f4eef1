package main

// A sweep on a real backend: each seed on a cluster of its own, started for
// the seed and closed after it, several clusters at once.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/havoclab/havoc/chaos"
	"github.com/havoclab/havoc/scenarios"
)

// realSweepDuration is a real sweep's default --duration: wall-clock seconds
// cost a real cluster what virtual ones do not, and 20 s holds several fault
// windows and their heals.
const realSweepDuration = 20 * time.Second

// profileAll is the --profile value of a sweep that gives each seed one of the
// profiles in turn.
const profileAll = "all"

// pinProfile replaces --profile all by the profile of seed (ProfileNames in
// turn, by seed) and returns the function that puts "all" back.
func (f *runFlags) pinProfile(seed uint64) (restore func()) {
	if f.profile != profileAll {
		return func() {}
	}
	names := scenarios.ProfileNames()
	f.profile = names[seed%uint64(len(names))]
	return func() { f.profile = profileAll }
}

// backendFlagNames are the backend flags a real sweep passes to its workers.
var backendFlagNames = []string{"backend", "target", "etcd-bin", "etcd-version", "run-dir", "cpus", "memory"}

// backendWorkerArgs are the backend flags of a sweep, for its workers.
func backendWorkerArgs(fs *pflag.FlagSet) []string {
	var args []string
	for _, n := range backendFlagNames {
		args = append(args, "--"+n+"="+fs.Lookup(n).Value.String())
	}
	return args
}

// prepareRealSweep builds (or finds cached) the etcd release the flags name,
// once, before the workers ask for it, and prints the fault kinds the
// backend cannot express, which each seed drops.
func prepareRealSweep(w io.Writer, bf *backendFlags, c scenarios.Config) error {
	probe := *bf
	be, err := probe.newBackend(c)
	if err != nil {
		return err
	}
	skip := chaos.Unsupported(be)
	if err := be.Close(); err != nil {
		return err
	}
	var dropped []string
	for _, k := range c.Faults {
		if slices.Contains(skip, k) {
			dropped = append(dropped, string(k))
		}
	}
	fmt.Fprintf(w, "%s backend, target %s", bf.backend, bf.target)
	if bf.etcdVersion != "" {
		fmt.Fprintf(w, " %s", bf.etcdVersion)
	}
	if len(dropped) > 0 {
		fmt.Fprintf(w, ": skipping fault kinds it cannot express: %s", strings.Join(dropped, ", "))
	}
	fmt.Fprintln(w)
	return nil
}

// expressible is kinds without those the backend cannot express.
func expressible(kinds, unsupported []chaos.Kind) []chaos.Kind {
	var out []chaos.Kind
	for _, k := range kinds {
		if !slices.Contains(unsupported, k) {
			out = append(out, k)
		}
	}
	return out
}

// Under --run-dir, each seed's cluster keeps its data dirs and logs in
// seed-N (seed-N.try2 for a second start).

// realStartTries is how many clusters a real seed starts before it gives up:
// a member can lose its port to another cluster starting at the same moment
// (ports are reserved, then released for the member to take).
const realStartTries = 2

// runRealSeed runs one seed of a real sweep on a cluster of its own: the
// fault kinds the backend cannot express dropped, full artifacts for a
// failing seed, and a reproduce line with the backend flags.
func runRealSeed(ctx context.Context, fs *pflag.FlagSet, bf backendFlags, f *runFlags, c scenarios.Config) (sweepResult, *scenarios.Result, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c.SummaryOnly = false
	if f.swarm || f.scenario != "" {
		bf.memberArgs = memberArgs(c) // the drawn or written cluster settings
	}
	r := sweepResult{Seed: c.Seed}
	var lastErr error
	for try := range realStartTries {
		b := bf // resolveEtcd rewrites its copy
		if b.runDir != "" {
			// Each cluster its own run dir (a given run dir is used as is).
			b.runDir = filepath.Join(b.runDir, fmt.Sprintf("seed-%d", c.Seed))
			if try > 0 {
				b.runDir += fmt.Sprintf(".try%d", try+1)
			}
		}
		be, err := b.newBackend(c)
		if err != nil {
			return r, nil, err
		}
		if c.Schedule == nil {
			c.Faults = expressible(c.Faults, chaos.Unsupported(be))
		}
		r.Repro = scenarios.Repro(c) + backendArgs(fs)
		if err := be.Start(ctx); err != nil {
			lastErr = fmt.Errorf("start (try %d of %d): %w", try+1, realStartTries, err)
			_ = be.Close()
			if ctx.Err() != nil {
				break
			}
			continue
		}
		res, err := scenarios.RunReal(ctx, be, c)
		if cerr := be.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close backend: %w", cerr)
		}
		return r, res, err
	}
	return r, nil, errors.Join(lastErr, ctx.Err())
}
