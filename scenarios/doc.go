// Package scenarios holds havoc's named scenarios: workloads, fault mixes and the checks that decide a run's verdict.
package scenarios
