// Package bench measures the capacity and latency of an etcd-style cluster
// through the etcd v3 client (go.etcd.io/etcd/client/v3), as etcd's benchmark
// tool does, for `harness bench`.
//
// Load is closed-loop (Clients concurrent requests, each sent when the last
// answered) or open-loop at a fixed Rate; open-loop latency is measured from the
// time a request was due, not from when it left, so that a stalled server shows
// in the percentiles instead of hiding behind the requests it kept from being
// sent (coordinated omission, as wrk2 corrects it). Every request is one
// attempt: a failure is counted, never retried.
//
// Every request becomes a Sample (what, when due, how long, failed or not);
// a Report (throughput, HDR-histogram percentiles per operation, a per-second
// series, fault windows) is computed from the samples after the run, so the
// figures are a function of the samples alone and are tested as such.
//
// Faults (Fault) are injected during the measured part through a
// chaos.Injector (a cluster.Backend); a probe that writes and reads every few
// milliseconds, apart from the workload, times the unavailability window.
package bench
