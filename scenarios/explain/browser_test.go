package explain

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPageRendersInChromium renders the page of a failing run in headless
// Chromium and reads the DOM it built: the failing operation, its label and
// the fault bands are there. Debian's chromium package provides the browser
// (.ci/run installs it); without it the test skips.
func TestPageRendersInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install -y chromium): the page is not checked in a browser")
	}
	dir := failingRun(t)
	rep := buildReport(t, dir)
	page := filepath.Join(dir, "explain.html")
	f, err := os.Create(page)
	require.NoError(t, err)
	require.NoError(t, rep.HTML(f))
	require.NoError(t, f.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--disable-gpu", "--no-sandbox",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+page)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	dom := string(out)
	assert.Contains(t, dom, `id="failing-op"`)
	assert.Contains(t, dom, "#2 2.000s..2.100s c02@m2 get(")
	assert.Contains(t, dom, `data-op="2"`)
	assert.Contains(t, dom, "cannot be linearized (served by m2)")
	assert.Equal(t, 2, strings.Count(dom, "fault-band"), "one band per fault")
	assert.Contains(t, dom, `data-fault="pause m2"`)
	assert.Contains(t, dom, `data-fault="loss loss=0.1"`)
	assert.Contains(t, dom, "k/&lt;script&gt;alert(1)&lt;/script&gt;", "the key is text, not markup")
	assert.NotContains(t, dom, "<script>alert(1)</script>")
}
