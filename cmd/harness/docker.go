package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/havoclab/havoc/cluster"
)

// newDockerCmd is `harness docker`: housekeeping for the Docker backend.
func newDockerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Housekeeping for the Docker backend (see scripts/start-docker.sh for an engine)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDockerCleanCmd())
	return cmd
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
