package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/havoclab/havoc/store/snapshot"
)

// newSnapshotCmd is `harness snapshot save|restore|status`, interoperable with
// etcdctl/etcdutl snapshot files.
func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save, restore and inspect etcd v3 snapshot files (interoperable with etcdctl and etcdutl)",
	}
	cmd.AddCommand(newSnapshotSaveCmd(), newSnapshotRestoreCmd(), newSnapshotStatusCmd())
	return cmd
}

func newSnapshotSaveCmd() *cobra.Command {
	var endpoints string
	var timeout time.Duration
	var sec clientSecurity
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Stream a snapshot from one member (Maintenance.Snapshot) into FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			eps := strings.Split(endpoints, ",")
			if len(eps) != 1 || eps[0] == "" {
				return fmt.Errorf("snapshot must be requested from exactly one endpoint, not %q", endpoints)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			tlsCfg, err := sec.tls()
			if err != nil {
				return &exitError{code: 2, msg: "harness snapshot save: " + err.Error()}
			}
			user, password, err := sec.credentials()
			if err != nil {
				return &exitError{code: 2, msg: "harness snapshot save: " + err.Error()}
			}
			version, err := saveSnapshot(ctx, clientv3.Config{Endpoints: eps, TLS: tlsCfg, Username: user, Password: password}, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Snapshot saved at %s\n", args[0])
			if version != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Server version %s\n", version)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&endpoints, "endpoints", "http://127.0.0.1:2379", "the one member to take the snapshot from")
	cmd.Flags().DurationVar(&timeout, "command-timeout", 10*time.Minute, "bound on the whole transfer")
	sec.register(cmd.Flags())
	return cmd
}

// saveSnapshot is etcdctl's save: stream into FILE.part, require the sha256
// trailer (size % 512 == 32), fsync, rename.
func saveSnapshot(ctx context.Context, cfg clientv3.Config, path string) (version string, err error) {
	endpoint := cfg.Endpoints[0]
	cfg.DialTimeout, cfg.Context, cfg.Logger = 5*time.Second, ctx, zap.NewNop()
	cli, err := clientv3.New(cfg)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	defer cli.Close()
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("snapshot from %s: %w", endpoint, err)
	}
	defer resp.Snapshot.Close()
	if _, err := snapshot.SaveStream(resp.Snapshot, path); err != nil {
		return "", fmt.Errorf("snapshot from %s: %w", endpoint, err)
	}
	return resp.Version, nil
}

func newSnapshotRestoreCmd() *cobra.Command {
	var o snapshot.RestoreOptions
	var advertise string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Build a data dir for havoc's store from a snapshot file (like etcdutl snapshot restore)",
		Long: `Restore a snapshot (from etcdctl, etcdutl or harness snapshot save) into a new data dir
for one member of a new cluster: <data-dir>/member/snap/db holds the keys with the new
membership, <data-dir>/member/wal havoc's log. Run it once per member with the same
--initial-cluster and --initial-cluster-token. Nothing is written if anything is wrong.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.SnapshotPath = args[0]
			o.InitialAdvertisePeerURLs = strings.Split(advertise, ",")
			if err := snapshot.Restore(o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored %s into %s as member %s\n", o.SnapshotPath, o.DataDir, o.Name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.DataDir, "data-dir", "", "directory to create (must be absent or empty; default <name>.etcd)")
	fl.StringVar(&o.Name, "name", "default", "name of the restored member")
	fl.StringVar(&o.InitialCluster, "initial-cluster", "default=http://localhost:2380", "every member of the new cluster, name=peerURL,...")
	fl.StringVar(&o.InitialClusterToken, "initial-cluster-token", "etcd-cluster", "token the member and cluster IDs derive from")
	fl.StringVar(&advertise, "initial-advertise-peer-urls", "http://localhost:2380", "this member's peer URLs (must match its --initial-cluster entry)")
	fl.BoolVar(&o.SkipHashCheck, "skip-hash-check", false, "accept a file without (or with a wrong) sha256 trailer, e.g. a copied member/snap/db")
	return cmd
}

func newSnapshotStatusCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status FILE",
		Short: "Print a snapshot's hash, revision, total keys and size (like etcdutl snapshot status)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := snapshot.Status(args[0])
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), format, st)
		},
	}
	cmd.Flags().StringVarP(&format, "write-out", "w", "simple", "output format: simple, table or json")
	return cmd
}

func printStatus(w io.Writer, format string, st snapshot.DBStatus) error {
	switch format {
	case "json":
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "table":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HASH\tREVISION\tTOTAL KEYS\tTOTAL SIZE\tVERSION")
		fmt.Fprintf(tw, "%x\t%d\t%d\t%s\t%s\n", st.Hash, st.Revision, st.TotalKey, humanBytes(st.TotalSize), st.Version)
		return tw.Flush()
	case "simple", "":
		_, err := fmt.Fprintf(w, "%x, %d, %d, %s, %s\n", st.Hash, st.Revision, st.TotalKey, humanBytes(st.TotalSize), st.Version)
		return err
	}
	return errors.New("unknown --write-out format " + format + " (want simple, table or json)")
}

// humanBytes prints a size as etcdutl does (go-humanize, SI units).
func humanBytes(n int64) string { return humanize.Bytes(uint64(n)) }
