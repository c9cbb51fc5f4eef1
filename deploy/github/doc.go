// Package github holds the tests that keep the repository's GitHub Actions
// workflows (.github/workflows: the pull-request job and the nightly sweep,
// mutant and real-etcd jobs) valid: every workflow passes actionlint, and the
// rules the README gives for them (artifacts and JUnit reports published
// whether a job passes or fails, a sharded swarm sweep merged into one report)
// hold.
package github
