// Package cluster starts and controls a cluster of store members on a backend: the deterministic simulator, OS processes or Docker containers.
package cluster
