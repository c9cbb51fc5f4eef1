package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/havoclab/havoc/internal/mutant"
	"github.com/havoclab/havoc/scenarios"
)

func TestParseMutants(t *testing.T) {
	all, err := parseMutants("all")
	require.NoError(t, err)
	require.Len(t, all, len(mutant.All))
	two, err := parseMutants("stale-read-follower, dedupe-off")
	require.NoError(t, err)
	require.Equal(t, []mutant.ID{mutant.StaleReadFollower, mutant.DedupeOff}, two)
	_, err = parseMutants("no-such-bug")
	require.ErrorContains(t, err, `no mutant "no-such-bug"`)
}

func TestCaught(t *testing.T) {
	require.True(t, caught(scenarios.VerdictIllegal))
	require.True(t, caught(verdictWorkerError))
	require.False(t, caught(scenarios.VerdictOK))
	require.False(t, caught(scenarios.VerdictInconclusive))
	require.False(t, caught("baseline-"+scenarios.VerdictNoLiveness), "a seed that fails without the mutant is no catch")
}

func TestMutantRepro(t *testing.T) {
	got := mutantRepro(mutant.DedupeOff, "go run ./cmd/harness run --seed 7 --nodes 3")
	require.Equal(t, "HAVOC_MUTANT=dedupe-off go run -tags havoc_mutants ./cmd/harness run --seed 7 --nodes 3", got)
}

// TestMutantTable: a missed mutant or one whose failure does not reproduce
// makes the command exit 1; the table names both, and the reproduce line of a
// caught one carries the mutant.
func TestMutantTable(t *testing.T) {
	caughtR := mutantResult{ID: mutant.DedupeOff, Caught: true, Seeds: 3, Elapsed: 2 * time.Second, Reproduced: true,
		First: sweepResult{Seed: 3, Verdict: scenarios.VerdictIllegal, Reason: "history is not linearizable", Repro: "go run ./cmd/harness run --seed 3"}}
	var out bytes.Buffer
	require.NoError(t, mutantTable(&out, []mutantResult{caughtR}, 10))
	assert.Contains(t, out.String(), "dedupe-off")
	assert.Contains(t, out.String(), "HAVOC_MUTANT=dedupe-off go run -tags havoc_mutants ./cmd/harness run --seed 3")
	assert.Contains(t, out.String(), "1 of 1 mutants caught")

	missed := mutantResult{ID: mutant.HashSkipBucket, Seeds: 10, Passed: map[string]int{scenarios.VerdictOK: 9, scenarios.VerdictInconclusive: 1}}
	unrepro := caughtR
	unrepro.ID, unrepro.Reproduced, unrepro.Repro = mutant.StaleReadLeader, false, sweepResult{Verdict: scenarios.VerdictOK}
	out.Reset()
	err := mutantTable(&out, []mutantResult{caughtR, missed, unrepro}, 10)
	var ee *exitError
	require.True(t, errors.As(err, &ee))
	require.Equal(t, exitViolation, ee.code)
	assert.Contains(t, ee.msg, "1 missed, 1 not reproduced")
	assert.Regexp(t, `hash-skip-bucket\s+missed\s+-\s+10\s+0\s+inconclusive×1 ok×9`, out.String())
	assert.Contains(t, out.String(), "NO: ok")
}

// TestMutantsCatchesCheapMutant builds the tagged harness and hunts one mutant
// that the default run catches with seed 1 (apply-uncommitted: a divergence
// within seconds); its failure must reproduce.
func TestMutantsCatchesCheapMutant(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the harness with -tags havoc_mutants and runs simulated seeds")
	}
	var stdout, stderr bytes.Buffer
	code := execute([]string{"mutants", "--mutants", string(mutant.ApplyUncommitted), "--seeds", "1-3",
		"--swarm=false", "--parallel", "1", "--out", t.TempDir()}, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Regexp(t, `apply-uncommitted\s+caught`, stdout.String())
	assert.Contains(t, stdout.String(), "reproduce: HAVOC_MUTANT=apply-uncommitted go run -tags havoc_mutants ./cmd/harness run --seed")
}
