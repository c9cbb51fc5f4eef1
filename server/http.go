package server

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// newGRPCServer registers etcd's services and gRPC health on a new server.
func newGRPCServer(m *Member) *grpc.Server {
	s := grpc.NewServer(
		grpc.MaxRecvMsgSize(m.cfg.MaxRequestBytes+512*1024),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.ChainUnaryInterceptor(m.unaryInterceptor),
		grpc.ChainStreamInterceptor(m.streamInterceptor),
	)
	pb.RegisterKVServer(s, kvServer{m: m})
	pb.RegisterWatchServer(s, watchServer{m: m})
	pb.RegisterLeaseServer(s, leaseServer{m: m})
	pb.RegisterClusterServer(s, clusterServer{m: m})
	pb.RegisterMaintenanceServer(s, maintenanceServer{m: m})
	pb.RegisterAuthServer(s, authServer{m: m})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	return s
}

// checkLeader refuses a request carrying `hasleader: true` while there is no
// leader (clientv3's WithRequireLeader).
func (m *Member) checkLeader(ctx context.Context) error {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	if vs := md.Get(rpctypes.MetadataRequireLeaderKey); len(vs) > 0 && vs[0] == rpctypes.MetadataHasLeader && m.leader.Load() == 0 {
		return rpctypes.ErrGRPCNoLeader
	}
	return nil
}

func (m *Member) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := func() (any, error) {
		if err := m.checkLeader(ctx); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}()
	m.metrics.handled.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

func (m *Member) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := m.checkLeader(ss.Context())
	if err == nil {
		err = h(srv, ss)
	}
	m.metrics.handled.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}

// newClientServer serves gRPC (HTTP/2, cleartext prior knowledge as clientv3
// speaks it) and /health, /metrics (HTTP/1.1 or 2) on the client listener.
func newClientServer(m *Member) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", m.serveHealth)
	mux.Handle("/metrics", promhttp.HandlerFor(m.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"etcdserver": Version, "etcdcluster": "3.7.0"})
	})
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				m.grpc.ServeHTTP(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		}),
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
	}
}

// healthJSON is etcd's /health body.
type healthJSON struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

func (m *Member) serveHealth(w http.ResponseWriter, _ *http.Request) {
	h := healthJSON{Health: "true"}
	st := m.status.Load()
	switch {
	case m.leader.Load() == 0:
		h = healthJSON{Health: "false", Reason: "RAFT NO LEADER"}
	case st != nil && len(st.Alarms) > 0:
		h = healthJSON{Health: "false", Reason: "ALARM " + st.Alarms[0].Alarm.String()}
	case m.Err() != nil:
		h = healthJSON{Health: "false", Reason: m.Err().Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	if h.Health != "true" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

// metrics are the member's Prometheus metrics, under etcd's names.
type metrics struct {
	reg           *prometheus.Registry
	leaderChanges prometheus.Counter
	handled       *prometheus.CounterVec
}

func newMetrics(m *Member) *metrics {
	reg := prometheus.NewRegistry()
	st := func(f func(s *statusView) float64) func() float64 {
		return func() float64 {
			p := m.status.Load()
			if p == nil {
				return 0
			}
			return f(&statusView{p.Leader, p.Committed, p.Applied, p.DBSize, p.DBSizeInUse})
		}
	}
	mt := &metrics{
		reg: reg,
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "etcd_server_leader_changes_seen_total", Help: "The number of leader changes seen."}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total", Help: "Total number of RPCs completed on the server, regardless of success or failure."},
			[]string{"grpc_method", "grpc_code"}),
	}
	reg.MustRegister(mt.leaderChanges, mt.handled,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "etcd_server_has_leader", Help: "Whether or not a leader exists. 1 is existence, 0 is not."},
			func() float64 {
				if m.leader.Load() != 0 {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "etcd_server_proposals_committed_total", Help: "The total number of consensus proposals committed."},
			st(func(s *statusView) float64 { return float64(s.committed) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "etcd_server_proposals_applied_total", Help: "The total number of consensus proposals applied."},
			st(func(s *statusView) float64 { return float64(s.applied) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "etcd_mvcc_db_total_size_in_bytes", Help: "Total size of the underlying database physically allocated in bytes."},
			st(func(s *statusView) float64 { return float64(s.dbSize) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "etcd_mvcc_db_total_size_in_use_in_bytes", Help: "Total size of the underlying database logically in use in bytes."},
			st(func(s *statusView) float64 { return float64(s.dbInUse) })),
	)
	return mt
}

type statusView struct {
	leader, committed, applied uint64
	dbSize, dbInUse            int64
}
