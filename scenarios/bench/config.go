package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Workload names what the clients send.
type Workload string

// The workloads.
const (
	WorkloadPut   Workload = "put"   // Put of a key drawn from the key space
	WorkloadGet   Workload = "get"   // Get of one key (linearizable unless Serializable)
	WorkloadRange Workload = "range" // Get of the key prefix with a limit (a paginated list's first page)
	WorkloadList  Workload = "list"  // the whole prefix in pages of Limit, pinned to the first page's revision (as kube-apiserver lists)
	WorkloadTxn   Workload = "txn"   // compare-and-set: If(mod_revision == last seen) Then(TxnOps puts) Else(get)
	WorkloadWatch Workload = "watch" // puts; the latency from each put's send to its event at every watcher
	WorkloadLease Workload = "lease" // one lease per client, renewed with KeepAliveOnce
)

// Workloads lists every workload in a fixed order.
var Workloads = []Workload{WorkloadPut, WorkloadGet, WorkloadRange, WorkloadList, WorkloadTxn, WorkloadWatch, WorkloadLease}

// ErrConfig reports a configuration the benchmark refuses.
var ErrConfig = errors.New("bench: bad configuration")

// Config is one benchmark: the workload and the load that drives it.
type Config struct {
	// Workload is what the clients send (WorkloadPut when empty).
	Workload Workload
	// Clients is the number of concurrent requests (16 when zero). In open
	// loop it bounds the requests in flight.
	Clients int
	// Conns is the number of client connections (gRPC channels) the clients
	// share round-robin (1 when zero).
	Conns int
	// Rate is the open-loop rate in requests per second over all clients;
	// zero runs closed loop.
	Rate float64
	// Warmup runs before the measured part and is left out of every figure.
	Warmup time.Duration
	// Duration is the measured part (10 s when zero and Total is zero).
	Duration time.Duration
	// Total, when positive, ends the measured part after that many requests
	// (or at Duration if that comes first and is set).
	Total int64
	// Timeout bounds one request (5 s when zero).
	Timeout time.Duration
	// KeySize is the length of every key in bytes (at least the prefix and
	// the digits the key space needs; 8 when zero).
	KeySize int
	// ValueSize is the length of every written value in bytes (256 when zero;
	// at least 8 for the watch workload, whose values carry the send time).
	ValueSize int
	// KeySpace is the number of distinct keys (1000 when zero).
	KeySpace int
	// Sequential draws keys in order (0, 1, 2, ... wrapping) instead of at random.
	Sequential bool
	// Serializable makes get, range and list serializable (answered by the member
	// the request reaches, without a ReadIndex round).
	Serializable bool
	// Limit is the page size of the range and list workloads (100 when zero).
	Limit int64
	// TxnOps is the number of puts in a txn's success branch, on consecutive
	// keys from the drawn one (1 when zero; at most KeySpace).
	TxnOps int
	// Watchers is the number of watchers of the watch workload (1 when zero).
	Watchers int
	// Seed seeds the key draws.
	Seed uint64
	// Faults are injected during the measured part (they need an injector).
	Faults []Fault
	// TLS, Username and Password reach a secured cluster (etcdctl's --cacert
	// --cert --key --user --password); none when zero.
	TLS                *tls.Config `json:"-"`
	Username, Password string      `json:"-"`
	// Progress, when set, gets a line every second while the run goes (the
	// elapsed time and the answers so far), each starting with a carriage
	// return so that a terminal shows one line, cleared when the run ends.
	Progress io.Writer `json:"-"`
}

// KeyPrefix starts every key the benchmark writes.
const KeyPrefix = "bench/"

// Validate fills defaults and refuses what cannot run.
func (c *Config) Validate() error {
	if c.Workload == "" {
		c.Workload = WorkloadPut
	}
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Conns == 0 {
		c.Conns = 1
	}
	if c.Duration == 0 && c.Total == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.KeySize == 0 {
		c.KeySize = 8
	}
	if c.ValueSize == 0 {
		c.ValueSize = 256
	}
	if c.KeySpace == 0 {
		c.KeySpace = 1000
	}
	if c.Limit == 0 {
		c.Limit = 100
	}
	if c.Watchers == 0 {
		c.Watchers = 1
	}
	if c.TxnOps == 0 {
		c.TxnOps = 1
	}
	var bad []string
	if !slices.Contains(Workloads, c.Workload) {
		bad = append(bad, fmt.Sprintf("workload %q (want one of %s)", c.Workload, workloadList()))
	}
	if c.Clients < 1 || c.Conns < 1 || c.Watchers < 1 || c.KeySpace < 1 || c.Limit < 1 || c.TxnOps < 1 {
		bad = append(bad, "clients, conns, watchers, key space, limit and txn ops must be positive")
	}
	if c.TxnOps > c.KeySpace {
		bad = append(bad, fmt.Sprintf("%d puts per txn need as many distinct keys (key space %d)", c.TxnOps, c.KeySpace))
	}
	if c.Rate < 0 || c.Warmup < 0 || c.Duration < 0 || c.Total < 0 || c.Timeout < 0 {
		bad = append(bad, "rate, warmup, duration, total and timeout must not be negative")
	}
	if c.KeySize < 1 || c.ValueSize < 1 {
		bad = append(bad, "key and value sizes must be positive")
	}
	if c.Workload == WorkloadWatch && c.ValueSize < stampSize {
		bad = append(bad, fmt.Sprintf("the watch workload needs values of at least %d bytes (they carry the send time)", stampSize))
	}
	for _, f := range c.Faults {
		if f.At < 0 || f.For < 0 {
			bad = append(bad, fmt.Sprintf("fault %s: negative time", f))
		}
		if c.Duration > 0 && f.At >= c.Duration {
			bad = append(bad, fmt.Sprintf("fault %s starts after the measured part (%s)", f, c.Duration))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(bad, "; "))
	}
	return nil
}

func workloadList() string {
	s := make([]string, len(Workloads))
	for i, w := range Workloads {
		s[i] = string(w)
	}
	return strings.Join(s, ", ")
}

// Loop describes the load: "closed loop, 16 clients" or "open loop at 500/s".
func (c Config) Loop() string {
	if c.Rate > 0 {
		return fmt.Sprintf("open loop at %g/s (at most %d in flight)", c.Rate, c.Clients)
	}
	return fmt.Sprintf("closed loop, %d clients", c.Clients)
}
