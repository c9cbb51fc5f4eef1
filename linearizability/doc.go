// Package linearizability records client histories and checks them against
// independent models of etcd's KV semantics with Porcupine.
//
// The models re-implement etcd's semantics on their own and never import the
// store: a checker that shares code with what it checks shares its bugs.
// (Full format and checking contract: see below; this comment is expanded
// as the package grows.)
package linearizability
