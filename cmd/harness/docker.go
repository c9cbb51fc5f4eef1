package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/havoclab/havoc/cluster"
	"github.com/havoclab/havoc/scenarios"
)

// newDockerCmd is `harness docker`: housekeeping for the Docker backend.
func newDockerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Housekeeping for the Docker backend (see scripts/start-docker.sh for an engine)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDockerCleanCmd(), newDockerImageCmd())
	return cmd
}

// newDockerImageCmd is `harness docker image`: the image of the harness
// itself, for a sweep on Kubernetes (deploy/kubernetes).
func newDockerImageCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "image",
		Short: "Build the harness's own image (a static binary, FROM scratch) and print its tag",
		Long: `Build this repository's harness as a static Linux binary and an image FROM scratch
around it (entrypoint /harness), through the Docker client, as the Docker backend builds
its member images: the same image serves as member and as sweep shard. The tag is the
binary's hash; an unchanged binary reuses the image. Print the tag; tag and push it for
a cluster (deploy/kubernetes, README "CI at scale").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := cluster.EnsureImage(cmd.Context(), cluster.DockerConfig{Target: cluster.TargetHavoc})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), info.Tag)
			return nil
		},
	}
}

func newDockerCleanCmd() *cobra.Command {
	var run string
	var images bool
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Remove the containers, networks and volumes havoc left behind",
		Long: `Remove every container, network and volume labelled havoc.run (all runs, or the
run given with --run), as left by a harness that was killed before it could close its
cluster. Built images are a cache keyed by binary hash and are kept unless --images.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			w := cmd.OutOrStdout()
			rm, err := cluster.CleanDocker(ctx, run)
			for _, c := range rm.Containers {
				fmt.Fprintln(w, "removed container", c)
			}
			for _, n := range rm.Networks {
				fmt.Fprintln(w, "removed network", n)
			}
			for _, v := range rm.Volumes {
				fmt.Fprintln(w, "removed volume", v)
			}
			if err != nil {
				return err
			}
			removedImages := 0
			if images {
				tags, err := cluster.RemoveImages(ctx)
				for _, t := range tags {
					fmt.Fprintln(w, "removed image", t)
				}
				if err != nil {
					return err
				}
				removedImages = len(tags)
			}
			if rm.Empty() && removedImages == 0 {
				fmt.Fprintln(w, "nothing to clean")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "clean only this run ID (the havoc.run label); default: every run")
	cmd.Flags().BoolVar(&images, "images", false, "also remove the images havoc built (havoc/member, havoc/etcd)")
	return cmd
}

// dockerFlags are the `harness run --backend docker` options.
type dockerFlags struct {
	cpus   float64
	memory string
}

func (f *dockerFlags) register(fl *pflag.FlagSet) {
	fl.Float64Var(&f.cpus, "cpus", 0, "--backend docker: CPU limit per member container (0 = none)")
	fl.StringVar(&f.memory, "memory", "", "--backend docker: memory limit per member container, e.g. 512m or 1g (empty = none)")
}

// newDocker builds the Docker backend for run: the image is built from this
// repository (static binary, FROM scratch), or from --etcd-bin if given.
func (b *backendFlags) newDocker(c scenarios.Config) (cluster.Backend, error) {
	mem, err := parseBytes(b.docker.memory)
	if err != nil {
		return nil, err
	}
	cfg := cluster.DockerConfig{
		Members: c.Members, Target: cluster.Target(b.target), Dir: b.runDir, Seed: c.Seed,
		CPUs: b.docker.cpus, MemoryBytes: mem, Log: os.Stderr, ExtraArgs: b.memberArgs,
	}
	if cfg.Target == cluster.TargetEtcd {
		cfg.Binary = b.etcdBin // a static Linux etcd; empty: build go.mod's pinned etcd
	}
	return cluster.NewDocker(cfg)
}

// parseBytes parses a size as docker's --memory does: a number with an
// optional b, k, m or g suffix (powers of 1024). Empty is zero.
func parseBytes(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'b':
		s = s[:len(s)-1]
	case 'k':
		mult, s = 1<<10, s[:len(s)-1]
	case 'm':
		mult, s = 1<<20, s[:len(s)-1]
	case 'g':
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (want e.g. 512m or 1g)", s)
	}
	return n * mult, nil
}
