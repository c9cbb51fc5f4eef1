// Package sim is havoc's deterministic simulator: one goroutine, a virtual clock, an event queue, one seeded PRNG, and a simulated network, disk and clock per host.
package sim
