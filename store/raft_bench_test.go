//go:build unix

package store

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkBareRaft is the machine's yardstick for the simulator's speed:
// three raft RawNodes on one goroutine, MemoryStorage, messages handed over
// directly, no disk and no apply. It proposes in rounds of 16 (the default
// run's clients) and reports committed proposals per CPU-second; divide a
// run's ops/cpu-s (scenarios' BenchmarkDefaultRun, BenchmarkSwarmRuns) by it
// for a figure that does not depend on the machine.
func BenchmarkBareRaft(b *testing.B) {
	const members, batch = 3, 16
	storages := make([]*raft.MemoryStorage, members)
	nodes := make([]*raft.RawNode, members)
	peers := make([]raft.Peer, members)
	for i := range peers {
		peers[i] = raft.Peer{ID: uint64(i + 1)}
	}
	for i := range nodes {
		storages[i] = raft.NewMemoryStorage()
		n, err := raft.NewRawNode(&raft.Config{ID: uint64(i + 1), ElectionTick: 10, HeartbeatTick: 1, Storage: storages[i],
			MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, CheckQuorum: true, PreVote: true, Logger: discardLogger{}})
		require.NoError(b, err)
		require.NoError(b, n.Bootstrap(peers))
		nodes[i] = n
	}
	var committed uint64 // entries of normal type committed on the leader
	// pump runs every node's Ready until none has one, delivering messages.
	pump := func() {
		for busy := true; busy; {
			busy = false
			for i, n := range nodes {
				if !n.HasReady() {
					continue
				}
				busy = true
				rd := n.Ready()
				if !raft.IsEmptyHardState(rd.HardState) {
					require.NoError(b, storages[i].SetHardState(rd.HardState))
				}
				require.NoError(b, storages[i].Append(rd.Entries))
				for _, m := range rd.Messages {
					_ = nodes[m.GetTo()-1].Step(m)
				}
				if i == 0 {
					for _, e := range rd.CommittedEntries {
						if e.GetType() == raftpb.EntryNormal && len(e.Data) > 0 {
							committed++
						}
					}
				}
				n.Advance(rd)
			}
		}
	}
	require.NoError(b, nodes[0].Campaign())
	for range 100 {
		pump()
		if nodes[0].Status().RaftState == raft.StateLeader {
			break
		}
		nodes[0].Tick()
	}
	require.Equal(b, raft.StateLeader, nodes[0].Status().RaftState, "%+v", nodes[0].Status())
	data := make([]byte, 64)
	var proposed uint64
	cpu0 := benchCPU(b)
	for b.Loop() {
		for range batch {
			require.NoError(b, nodes[0].Propose(data))
			proposed++
		}
		pump()
		if proposed%4096 < batch {
			// Compact as a store would, so memory stays flat.
			idx := nodes[0].Status().Applied
			for _, s := range storages {
				if fi, _ := s.FirstIndex(); idx > fi+1000 {
					_ = s.Compact(idx - 1000)
				}
			}
		}
	}
	cpu := benchCPU(b) - cpu0
	require.Equal(b, proposed, committed)
	b.ReportMetric(float64(committed)/cpu.Seconds(), "proposals/cpu-s")
}

// benchCPU is the CPU time the process has used (user and system).
func benchCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardLogger is a raft.Logger that prints nothing.
type discardLogger struct{}

func (discardLogger) Debug(...any)              {}
func (discardLogger) Debugf(string, ...any)     {}
func (discardLogger) Error(...any)              {}
func (discardLogger) Errorf(string, ...any)     {}
func (discardLogger) Info(...any)               {}
func (discardLogger) Infof(string, ...any)      {}
func (discardLogger) Warning(...any)            {}
func (discardLogger) Warningf(string, ...any)   {}
func (discardLogger) Fatal(v ...any)            { panic(v) }
func (discardLogger) Fatalf(f string, v ...any) { panic(f) }
func (discardLogger) Panic(v ...any)            { panic(v) }
func (discardLogger) Panicf(f string, v ...any) { panic(f) }
