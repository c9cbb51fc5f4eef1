// Package sim is havoc's deterministic simulator: one goroutine, a virtual
// clock, one event queue, one seeded PRNG, and a simulated network, disk and
// clock per host (the three things TigerBeetle's simulator stubs).
//
// # Contract
//
// A run is a function of (Config, the hosts and processes added, the faults
// scheduled): the same inputs give the same events in the same order, the
// same trace bytes and the same results. A shrinker can therefore replay a
// failing run with fewer faults by scheduling less. To keep it so:
//
//   - Everything happens in World.RunFor / RunUntil / Step on the caller's
//     goroutine; the package starts no goroutines and reads no wall clock.
//   - Events are ordered by (virtual time, push sequence number): ties run
//     in the order they were queued.
//   - All randomness comes from the world PRNG (World.Rand, math/rand/v2
//     PCG seeded by Config.Seed), which the network also draws from, or from
//     a host PRNG (Host.Rand) derived from the seed and the host name, whose
//     draws do not disturb other hosts'.
//   - Hosts are iterated in name order (World.Hosts) and links in AddHost
//     order; no map is ranged over on a path that queues, sends or traces.
//   - Payloads are opaque (any) and passed by reference: the simulator never
//     copies, encodes or inspects them, and the trace prints only Stringers
//     and basic values (never pointers).
//
// # Model
//
// A Host runs a Process (a store member or a client) and gives it a name,
// a clock (Host.Now, skewed by SetClock offset and drift), timers
// (Host.After in host-local time), a network endpoint (Host.Send) and a
// Disk. Faults are verbs on hosts and on the Network, applied directly or
// from World.Schedule events:
//
//   - Host.Crash / CrashTorn: timers dropped, messages arriving while down
//     dropped, Disk.Crash (unsynced writes lost) or Disk.CrashTorn. Restart
//     calls Process.Start again on the same value, which must rebuild its
//     state from the disk.
//   - Host.Pause / Resume: timers and deliveries falling due while paused
//     run at Resume, in the order they fell due.
//   - Host.SetClock: offset and drift (ppm) of the host clock.
//   - Network: per-direction links with latency, loss, duplication,
//     reordering and a queue limit; Partition, PartitionOneWay, Isolate,
//     Repair, Hold / Release, Heal. Without reordering a link is FIFO like a
//     TCP stream. A cut link also drops the messages that were in flight on
//     it, even if it is repaired before they arrive.
//
// World.Run* return ErrTimeout or ErrNoProgress (Config.MaxEvents) instead
// of hanging, so a stuck run fails with its seed. A process that panics does
// not take the caller down: the world recovers the panic, crashes the host,
// stops, and the Run methods return a *Panic (ErrPanic) naming the host.
//
// # Performance
//
// Events are typed records in a slab behind a binary heap of 24-byte keys,
// timers live in per-host slot tables with generation-checked IDs, and
// nothing is formatted unless Config.Trace is set: the hot paths (send,
// deliver, timer) allocate nothing. Cancelled timers are compacted out of
// the queue when they are the majority.
package sim
