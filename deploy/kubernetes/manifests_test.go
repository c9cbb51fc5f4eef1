package kubernetes

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// manifests decodes every manifest of the directory strictly (an unknown or
// misspelt field is an error) into the k8s.io/api type of its kind.
func manifests(t *testing.T) (jobs map[string]*batchv1.Job, claims map[string]*corev1.PersistentVolumeClaim) {
	t.Helper()
	jobs, claims = map[string]*batchv1.Job{}, map[string]*corev1.PersistentVolumeClaim{}
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal(b, &tm), f)
		switch tm.Kind {
		case "Job":
			require.Equal(t, "batch/v1", tm.APIVersion, f)
			var j batchv1.Job
			require.NoError(t, yaml.UnmarshalStrict(b, &j), f)
			jobs[j.Name] = &j
		case "PersistentVolumeClaim":
			require.Equal(t, "v1", tm.APIVersion, f)
			var c corev1.PersistentVolumeClaim
			require.NoError(t, yaml.UnmarshalStrict(b, &c), f)
			claims[c.Name] = &c
		default:
			t.Fatalf("%s: kind %q: the test knows Job and PersistentVolumeClaim", f, tm.Kind)
		}
	}
	return jobs, claims
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestSweepJobRules: the sweep is an Indexed Job with completions and
// parallelism, retries counted per index with restartPolicy Never, a pod
// failure policy that fails (does not retry) an index whose shard found a
// violation, JOB_COMPLETIONS equal to its completions, and every Job's
// results on a claim the directory defines.
func TestSweepJobRules(t *testing.T) {
	jobs, claims := manifests(t)
	sweep := jobs["havoc-sweep"]
	require.NotNil(t, sweep, "sweep-job.yaml defines havoc-sweep")
	s := sweep.Spec
	require.NotNil(t, s.CompletionMode)
	require.Equal(t, batchv1.IndexedCompletion, *s.CompletionMode)
	require.NotNil(t, s.Completions)
	require.NotNil(t, s.Parallelism)
	require.LessOrEqual(t, *s.Parallelism, *s.Completions)
	require.NotNil(t, s.BackoffLimitPerIndex)
	require.Equal(t, corev1.RestartPolicyNever, s.Template.Spec.RestartPolicy)
	require.Len(t, s.Template.Spec.Containers, 1)
	c := s.Template.Spec.Containers[0]
	require.Equal(t, "sweep", c.Args[0])
	require.Equal(t, strconv.Itoa(int(*s.Completions)), env(c, "JOB_COMPLETIONS"), "JOB_COMPLETIONS is the Job's completions")
	require.NotContains(t, strings.Join(c.Args, " "), "--shard", "the shard comes from the Job's index")

	require.NotNil(t, s.PodFailurePolicy)
	failIndex := map[int32]bool{}
	for _, r := range s.PodFailurePolicy.Rules {
		if r.Action == batchv1.PodFailurePolicyActionFailIndex && r.OnExitCodes != nil {
			require.Equal(t, batchv1.PodFailurePolicyOnExitCodesOpIn, r.OnExitCodes.Operator)
			require.Equal(t, c.Name, *r.OnExitCodes.ContainerName)
			for _, v := range r.OnExitCodes.Values {
				failIndex[v] = true
			}
		}
	}
	require.True(t, failIndex[1], "a shard that found a violation (exit 1) is not retried")
	require.False(t, failIndex[4], "a seed that could not run (exit 4) is retried")

	for name, j := range jobs {
		for _, v := range j.Spec.Template.Spec.Volumes {
			require.NotNil(t, v.PersistentVolumeClaim, name)
			require.Contains(t, claims, v.PersistentVolumeClaim.ClaimName, "%s mounts a claim the directory defines", name)
		}
	}
	merge := jobs["havoc-merge"]
	require.NotNil(t, merge, "merge-job.yaml defines havoc-merge")
	require.Equal(t, []string{"report", "merge"}, merge.Spec.Template.Spec.Containers[0].Args[:2])
	require.Equal(t, corev1.RestartPolicyNever, merge.Spec.Template.Spec.RestartPolicy)
}

// TestJobAsLocalProcesses runs the sweep Job's command line as local
// processes, one per index with the environment the Job gives its pods (a
// smaller seed list and run, and 4 completions), then the merge Job's, and
// requires the merge to hold every seed once.
func TestJobAsLocalProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the harness and runs a sweep")
	}
	jobs, _ := manifests(t)
	bin := filepath.Join(t.TempDir(), "harness")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/havoclab/havoc/cmd/harness").CombinedOutput()
	require.NoError(t, err, "%s", out)
	results := t.TempDir()
	// local rewrites a Job's arguments for this machine: the volume's mount
	// path becomes results, and the sweep is made small.
	local := func(args []string) []string {
		var a []string
		for _, arg := range args {
			arg = strings.ReplaceAll(arg, "/results", results)
			switch {
			case strings.HasPrefix(arg, "--seeds="):
				arg = "--seeds=1-8"
			case strings.HasPrefix(arg, "--parallel="):
				arg = "--parallel=1"
			}
			a = append(a, arg)
		}
		if args[0] == "sweep" {
			a = append(a, "--duration=3s", "--quiet") // a swarm sweep draws its clients
		}
		return a
	}
	const completions = 4
	sweep := jobs["havoc-sweep"].Spec.Template.Spec.Containers[0]
	var codes []int
	for i := range completions {
		cmd := exec.Command(bin, local(sweep.Args)...)
		cmd.Env = append(os.Environ(), "JOB_COMPLETION_INDEX="+strconv.Itoa(i), "JOB_COMPLETIONS="+strconv.Itoa(completions))
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		require.Contains(t, []int{0, 1, 3}, code, "shard %d: %v\n%s", i, err, out)
		require.Contains(t, string(out), "shard "+strconv.Itoa(i)+"/4: 2 seeds")
		codes = append(codes, code)
	}
	merge := exec.Command(bin, local(jobs["havoc-merge"].Spec.Template.Spec.Containers[0].Args)...)
	mout, _ := merge.CombinedOutput()
	require.Equal(t, slices.Max(codes), merge.ProcessState.ExitCode(), "%s", mout)
	var merged struct {
		Planned int `json:"planned"`
		Cases   []struct {
			Seed uint64 `json:"seed"`
		} `json:"cases"`
	}
	b, err := os.ReadFile(filepath.Join(results, "merged.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &merged))
	require.Equal(t, 8, merged.Planned)
	var seeds []uint64
	for _, c := range merged.Cases {
		seeds = append(seeds, c.Seed)
	}
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8}, seeds)
	require.FileExists(t, filepath.Join(results, "junit.xml"))
	require.FileExists(t, filepath.Join(results, "index.html"))
}
