package cluster

// Preparing data dirs for the Docker backend (DockerConfig.Prepare).
//
// Members keep their data in a Docker volume and the images are FROM scratch
// (no shell, no tar, no cp), so nothing can run inside a container to restore
// it. Instead, in Start:
//
//  1. the proxies exist, so the peer URLs and member IDs are known; the
//     containers are created (not started), which creates their volumes;
//  2. Prepare runs with a ProcessSpec whose MemberSpec.DataDir are fresh host
//     directories <Dir>/<member>.data: a drill restores each member's data dir
//     there (snapshot.Restore or the host's etcdutl);
//  3. each host directory is streamed as a tar into the created container at
//     /data/<member> (the engine mounts the container's volume for the copy);
//     the files belong to root in the volume, as the member (root in a
//     FROM-scratch image) writes them anyway, so Close removes them with the
//     volume, and the host copy is removed at once (it goes stale the moment
//     the member writes);
//  4. the members start on their prepared data dirs.
//
// Bind mounts of host dirs were the alternative; they were not chosen because
// the members would then write root-owned files into the harness's run
// directory, which a harness not running as root could not remove.

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// prepareMembers runs cfg.Prepare (if set) and copies every member's prepared
// data dir into its created container.
func (d *Docker) prepareMembers(ctx context.Context, ms []*dockerMember, initial, token string) error {
	if d.cfg.Prepare == nil {
		return nil
	}
	spec := ProcessSpec{InitialCluster: initial, Token: token}
	for _, m := range ms {
		dir := filepath.Join(d.dir, m.name+".data")
		if err := os.RemoveAll(dir); err != nil { // a stale one of an earlier run in the same Dir
			return fmt.Errorf("cluster: docker: prepare %s: %w", m.name, err)
		}
		spec.Members = append(spec.Members, MemberSpec{Name: m.name, PeerURL: "http://" + m.proxy.Addr(), DataDir: dir})
	}
	if err := d.cfg.Prepare(spec); err != nil {
		return fmt.Errorf("cluster: docker: prepare: %w", err)
	}
	for i, m := range ms {
		dir := spec.Members[i].DataDir
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			continue // Prepare left this member to bootstrap empty
		}
		n, err := d.copyDir(ctx, m.container, dir, m.name)
		if err != nil {
			return fmt.Errorf("cluster: docker: copy the prepared data dir of %s into its volume: %w", m.name, err)
		}
		d.event(m.name, "prepared data dir copied into volume %s (%d bytes)", m.container, n)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("cluster: docker: remove the host copy of %s's data dir: %w", m.name, err)
		}
	}
	return nil
}

// copyDir streams hostDir as a tar into container at dockerDataDir/name and
// returns the bytes of file content copied.
func (d *Docker) copyDir(ctx context.Context, container, hostDir, name string) (int64, error) {
	pr, pw := io.Pipe()
	var n int64
	done := make(chan error, 1)
	go func() {
		var err error
		n, err = writeTar(pw, hostDir, name)
		pw.CloseWithError(err)
		done <- err
	}()
	_, err := d.cli.CopyToContainer(ctx, container, client.CopyToContainerOptions{DestinationPath: dockerDataDir, Content: pr})
	pr.CloseWithError(io.ErrClosedPipe) // unblocks the writer if the engine stopped reading
	if werr := <-done; werr != nil && err == nil {
		err = werr
	}
	return n, err
}

// writeTar writes the tree under dir as a tar whose entries are named
// prefix/<path relative to dir>, keeping modes (etcd wants 0700 data dirs).
// Only directories and regular files are expected in a data dir.
func writeTar(w io.Writer, dir, prefix string) (int64, error) {
	tw := tar.NewWriter(w)
	var total int64
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return fmt.Errorf("%s: not a regular file or directory (%s)", path, fi.Mode().Type())
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(filepath.Join(prefix, rel))
		if fi.IsDir() && !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		c, err := io.Copy(tw, f)
		total += c
		return err
	})
	if err != nil {
		return total, err
	}
	return total, tw.Close()
}

// Client returns a clientv3 client bound to member's published client port
// only, kept until Close. Like Process.Client it makes one attempt per RPC
// (NewClient): a retried write would confuse the checker.
func (d *Docker) Client(member string) (*clientv3.Client, error) {
	if d.member(member) == nil {
		return nil, fmt.Errorf("cluster: docker: no member %q (before Start?)", member)
	}
	c, _, err := d.statusClient(member)
	return c, err
}

// dockerStopTimeoutSeconds is how long Stop lets a member shut down after
// SIGTERM before the engine sends SIGKILL (as Process.Stop waits 10 s).
const dockerStopTimeoutSeconds = 10

// Stop stops member gracefully: SIGTERM, then SIGKILL after 10 s (docker
// stop). The exit is the harness's doing, so Err does not report it; Restart
// starts the member again on its volume.
func (d *Docker) Stop(member string) error {
	c, err := d.containerOf(member)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.down[member] = true // before the exit, so that a concurrent Err never sees it unexplained
	d.mu.Unlock()
	ctx, cancel := opCtx()
	defer cancel()
	timeout := dockerStopTimeoutSeconds
	if _, err := d.cli.ContainerStop(ctx, c, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("cluster: docker: stop %s: %w", member, err)
	}
	d.event(member, "docker stop (SIGTERM, SIGKILL after %d s)", timeout)
	return nil
}
