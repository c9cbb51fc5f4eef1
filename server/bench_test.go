package server

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPut measures sequential Puts through gRPC to a 3-member loopback
// cluster (one client, one outstanding request: commit latency bound), and
// concurrent Puts from 16 goroutines (throughput).
func BenchmarkPut(b *testing.B) {
	c := startCluster(b, 3)
	lead := c.waitLeader()
	cli := c.client(c.index(lead))
	ctx := context.Background()
	val := string(make([]byte, 128))
	b.Run("sequential", func(b *testing.B) {
		start := time.Now()
		i := 0
		for b.Loop() {
			if _, err := cli.Put(ctx, fmt.Sprint("k", i%1000), val); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(i)/time.Since(start).Seconds(), "ops/s")
	})
	b.Run("parallel16", func(b *testing.B) {
		b.SetParallelism(16)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := cli.Put(ctx, fmt.Sprint("p", i%1000), val); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	})
}
