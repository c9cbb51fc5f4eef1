// Package linearizability records client histories and checks them against independent models of etcd's KV semantics with Porcupine.
package linearizability
