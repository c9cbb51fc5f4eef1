package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Labels on everything the Docker backend creates; `harness docker clean` finds
// leftovers of crashed runs by them.
const (
	labelRun    = "havoc.run"    // run ID, on containers, networks and volumes
	labelMember = "havoc.member" // member name, on containers and volumes
	labelImage  = "havoc.image"  // image repository, on images (kept as a cache)
)

// ErrNoDocker reports that no Docker engine answers.
var ErrNoDocker = errors.New("cluster: no Docker engine reachable")

// dockerClient connects to the engine named by DOCKER_HOST (default: the local
// socket) and negotiates the API version, so an engine that speaks only an older
// API (1.41 for Debian's docker.io 20.10) works.
func dockerClient(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDocker, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("%w at %s (start one with scripts/start-docker.sh): %w", ErrNoDocker, cli.DaemonHost(), err)
	}
	return cli, nil
}

// DockerAvailable returns nil if a Docker engine answers, or an error wrapping
// ErrNoDocker that says in one line where it looked and how to start one.
func DockerAvailable(ctx context.Context) error {
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	return cli.Close()
}

// Removed lists what a cleanup removed, by name.
type Removed struct {
	Containers, Networks, Volumes []string
}

// Empty reports whether nothing was removed.
func (r Removed) Empty() bool {
	return len(r.Containers)+len(r.Networks)+len(r.Volumes) == 0
}

// CleanDocker removes every container, network and volume labelled as havoc's,
// of the run runID, or of every run when runID is "" (leftovers of crashed runs).
// Images are kept: they are a cache keyed by binary hash. It removes what it can
// and returns the errors of the rest.
func CleanDocker(ctx context.Context, runID string) (Removed, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return Removed{}, err
	}
	defer cli.Close()
	return cleanDocker(ctx, cli, runID)
}

func runFilter(runID string) client.Filters {
	if runID == "" {
		return client.Filters{}.Add("label", labelRun)
	}
	return client.Filters{}.Add("label", labelRun+"="+runID)
}

func cleanDocker(ctx context.Context, cli *client.Client, runID string) (Removed, error) {
	var rm Removed
	var errs []error
	f := runFilter(runID)
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return rm, fmt.Errorf("cluster: list containers: %w", err)
	}
	for _, c := range cs.Items {
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = c.Names[0][1:] // names start with "/"
		}
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
			continue
		}
		rm.Containers = append(rm.Containers, name)
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	for _, n := range ns.Items {
		if _, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		rm.Networks = append(rm.Networks, n.Name)
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("list volumes: %w", err))
	}
	for _, v := range vs.Items {
		if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		rm.Volumes = append(rm.Volumes, v.Name)
	}
	slices.Sort(rm.Containers)
	slices.Sort(rm.Networks)
	slices.Sort(rm.Volumes)
	if len(errs) > 0 {
		return rm, fmt.Errorf("cluster: docker cleanup: %w", errors.Join(errs...))
	}
	return rm, nil
}

// Leftovers lists (without removing) what CleanDocker would remove.
func Leftovers(ctx context.Context, runID string) (Removed, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return Removed{}, err
	}
	defer cli.Close()
	var out Removed
	f := runFilter(runID)
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return out, err
	}
	for _, c := range cs.Items {
		out.Containers = append(out.Containers, c.ID[:12])
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return out, err
	}
	for _, n := range ns.Items {
		out.Networks = append(out.Networks, n.Name)
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return out, err
	}
	for _, v := range vs.Items {
		out.Volumes = append(out.Volumes, v.Name)
	}
	return out, nil
}

// RemoveImages removes every image havoc built (labelled havoc.image), which
// only costs a rebuild on the next run. It returns the removed tags.
func RemoveImages(ctx context.Context) ([]string, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	imgs, err := cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("label", labelImage)})
	if err != nil {
		return nil, fmt.Errorf("cluster: list images: %w", err)
	}
	var removed []string
	var errs []error
	for _, im := range imgs.Items {
		name := im.ID
		if len(im.RepoTags) > 0 {
			name = strings.Join(im.RepoTags, ",")
		}
		if _, err := cli.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove image %s: %w", name, err))
			continue
		}
		removed = append(removed, name)
	}
	slices.Sort(removed)
	if len(errs) > 0 {
		return removed, fmt.Errorf("cluster: docker cleanup: %w", errors.Join(errs...))
	}
	return removed, nil
}
