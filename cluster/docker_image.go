package cluster

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Image repositories of the two targets. Tags are the first 12 hex digits of the
// binary's SHA-256, so an image is rebuilt exactly when its binary changes.
const (
	imageRepoHavoc = "havoc/member"
	imageRepoEtcd  = "havoc/etcd"
)

// ImageInfo says which image a run uses and what it cost to get it.
type ImageInfo struct {
	Tag    string // e.g. havoc/etcd:0123456789ab
	Binary string // the static binary the image was built from
	// Built is false when the tag already existed (cache hit by binary hash).
	Built bool
	// BinaryWall and ImageWall are the time spent in `go build` and in the
	// engine's image build (zero on a cache hit).
	BinaryWall, ImageWall time.Duration
}

// EnsureImage builds the static binary of cfg.Target (unless cfg.Binary names
// one) and the FROM-scratch image around it, unless an image tagged with the
// binary's hash already exists.
func EnsureImage(ctx context.Context, cfg DockerConfig) (ImageInfo, error) {
	if err := cfg.Validate(); err != nil {
		return ImageInfo{}, err
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return ImageInfo{}, err
	}
	defer cli.Close()
	return ensureImage(ctx, cli, cfg)
}

func ensureImage(ctx context.Context, cli *client.Client, cfg DockerConfig) (ImageInfo, error) {
	var info ImageInfo
	bin := cfg.Binary
	if bin == "" {
		t0 := time.Now()
		var err error
		if bin, err = buildBinary(ctx, cfg); err != nil {
			return info, err
		}
		info.BinaryWall = time.Since(t0)
	}
	info.Binary = bin
	repo, entry := imageRepoHavoc, "harness"
	if cfg.target() == TargetEtcd {
		repo, entry = imageRepoEtcd, "etcd"
	}
	t0 := time.Now()
	tag, built, err := buildImage(ctx, cli, bin, repo, entry)
	if err != nil {
		return info, err
	}
	info.Tag, info.Built = tag, built
	if built {
		info.ImageWall = time.Since(t0)
	}
	return info, nil
}

// buildBinary runs `CGO_ENABLED=0 go build` for the target inside the module and
// returns the path of the binary in the cache directory, named by its hash.
// Each build links into a fresh temporary file that is renamed into place, so
// that concurrent harnesses (or test packages) never read a half-written or
// replaced binary; Go's build cache keeps a rebuild to a relink.
func buildBinary(ctx context.Context, cfg DockerConfig) (string, error) {
	mod, err := cfg.moduleDir()
	if err != nil {
		return "", err
	}
	cache, err := cfg.cacheDir()
	if err != nil {
		return "", err
	}
	pkg, name := "./cmd/harness", "harness"
	if cfg.target() == TargetEtcd {
		// Pinned in go.mod's tool block: the reference etcd of the same version
		// as the client and API the harness speaks.
		pkg, name = "go.etcd.io/etcd/server/v3", "etcd"
	}
	tmpDir, err := os.MkdirTemp(cache, name+"-build-")
	if err != nil {
		return "", fmt.Errorf("cluster: docker cache: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, pkg)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cluster: go build %s: %w\n%s", pkg, err, strings.TrimSpace(string(b)))
	}
	sum, err := fileHash(tmp)
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, name+"-"+sum[:12])
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("cluster: docker cache: %w", err)
	}
	pruneBinaries(cache, name, out)
	return out, nil
}

// pruneBinaries removes cached binaries of name other than keep that are
// older than an hour (younger ones may be in use by a concurrent run).
func pruneBinaries(cache, name, keep string) {
	old, _ := filepath.Glob(filepath.Join(cache, name+"-*"))
	for _, p := range old {
		if fi, err := os.Stat(p); p != keep && err == nil && time.Since(fi.ModTime()) > time.Hour {
			_ = os.RemoveAll(p) // stale binaries and build dirs of killed runs
		}
	}
}

// fileHash returns the hex SHA-256 of a file.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cluster: hash binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("cluster: hash binary %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildImage builds repo:<hash12> FROM scratch with bin copied to /entry as
// the entrypoint, unless the tag exists. It reports whether it built.
func buildImage(ctx context.Context, cli *client.Client, bin, repo, entry string) (tag string, built bool, err error) {
	sum, err := fileHash(bin)
	if err != nil {
		return "", false, err
	}
	tag = repo + ":" + sum[:12]
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, false, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", false, fmt.Errorf("cluster: inspect image %s: %w", tag, err)
	}
	buildCtx, err := imageContext(bin, entry)
	if err != nil {
		return "", false, err
	}
	res, err := cli.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{labelImage: repo},
	})
	if err != nil {
		return "", false, fmt.Errorf("cluster: build image %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := readBuildStream(res.Body); err != nil {
		return "", false, fmt.Errorf("cluster: build image %s: %w", tag, err)
	}
	return tag, true, nil
}

// imageContext is the in-memory tar build context: a Dockerfile and the binary.
func imageContext(bin, entry string) (io.Reader, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("cluster: read binary: %w", err)
	}
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT [\"/%s\"]\n", entry, entry, entry)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{entry, 0o755, data},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// readBuildStream drains the engine's JSON message stream and returns the first
// error it reports (a failed build still answers 200 and says so in the stream).
func readBuildStream(r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	var last string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read build output after %q: %w", last, err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if s := strings.TrimSpace(msg.Stream); s != "" {
			last = s
		}
	}
}
