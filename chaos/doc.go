// Package chaos describes faults as replayable data (partitions of every shape,
// crashes, pauses, message loss, delay, duplication, reordering, clock skew,
// membership changes) and applies them to any backend that implements Injector
// (and, for the kinds that need more, Scoped, Clocked, Pointed or Membership).
//
// A Schedule is a list of Faults, each with a start time, a duration and the
// members it targets, drawn from a seed by Generate and printed one per line. Faults
// are data so that a failing run can be replayed and later shrunk to a minimal
// schedule. Targets that depend on the run (the current leader) are resolved when the
// fault is applied, and the resolution is reported in the description.
package chaos
