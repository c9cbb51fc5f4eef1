// Package kubernetes holds the manifests that run a sharded sweep on a
// Kubernetes cluster (an Indexed Job, its results volume and the merge step)
// and the tests that hold them to the rules the README gives.
package kubernetes
