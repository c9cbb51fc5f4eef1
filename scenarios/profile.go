package scenarios

import (
	"fmt"
	"slices"
	"strings"

	"github.com/havoclab/havoc/linearizability"
)

// The traffic profiles (Workload.Profile): named operation mixes.
const (
	// ProfileEtcd is the default: every operation etcd clients send, reads
	// and writes most, compaction, defragmentation and past reads at modest
	// weights.
	ProfileEtcd = "etcd"
	// ProfileKubernetes is what kube-apiserver sends: keys
	// /registry/<resource>/<namespace>/<name>; creates as a txn on
	// mod_revision == 0, updates as a txn on the mod_revision last seen
	// with a get on failure; paginated lists of a resource pinned to the
	// first page's revision; apiserver-style compaction.
	ProfileKubernetes = "kubernetes"
	// ProfileLeases grants, attaches and revokes leases most.
	ProfileLeases = "leases"
	// ProfileAdmin compacts (both styles) and defragments often under the
	// etcd mix.
	ProfileAdmin = "admin"
	// ProfileWatchHeavy is the etcd mix with twice the puts and txns,
	// watched by watchHeavyWatchers long-lived watchers (when the run does
	// not set their number), half of them slow readers that stop reading
	// for a while now and then, so that members hold their events and
	// make them catch up from history.
	ProfileWatchHeavy = "watch-heavy"
)

// watchHeavyWatchers is the number of watchers of the watch-heavy profile.
const watchHeavyWatchers = 32

// registryPrefix is the prefix of the kubernetes profile's keys.
const registryPrefix = "/registry/"

// kubeResources are the resources the kubernetes profile's keys belong to.
var kubeResources = []string{"pods", "configmaps", "leases"}

// Profiles maps every profile name to its operation mix. A Workload whose
// Mix is nil takes its Profile's.
var Profiles = map[string][]Weight{
	ProfileEtcd: DefaultMix,
	ProfileKubernetes: {
		{Kind: linearizability.KindGet, Weight: 200},
		{Kind: linearizability.KindCAS, Variant: VariantByMod, Weight: 300},
		{Kind: linearizability.KindDelete, Weight: 40},
		{Kind: linearizability.KindRange, Variant: VariantPaged, Weight: 40},
		{Kind: linearizability.KindGet, Variant: VariantPast, Weight: 10},
		{Kind: linearizability.KindCompact, Variant: VariantAPIServer, Weight: 3},
	},
	ProfileLeases: {
		{Kind: linearizability.KindGet, Weight: 100},
		{Kind: linearizability.KindPut, Weight: 50},
		{Kind: linearizability.KindRange, Weight: 20},
		{Kind: linearizability.KindLeaseGrant, Weight: 100},
		{Kind: linearizability.KindPutLease, Weight: 250},
		{Kind: linearizability.KindLeaseRevoke, Weight: 100},
	},
	ProfileAdmin:      adminMix(),
	ProfileWatchHeavy: watchHeavyMix(),
}

// watchHeavyMix is the etcd mix with puts and txns twice as frequent.
func watchHeavyMix() []Weight {
	mix := slices.Clone(DefaultMix)
	for i := range mix {
		if k := mix[i].Kind; k == linearizability.KindPut || k == linearizability.KindTxn {
			mix[i].Weight *= 2
		}
	}
	return mix
}

// adminMix is the etcd mix with compactions and defragmentations twenty
// times as frequent.
func adminMix() []Weight {
	mix := slices.Clone(DefaultMix)
	for i := range mix {
		if k := mix[i].Kind; k == linearizability.KindCompact || k == linearizability.KindDefrag {
			mix[i].Weight *= 20
		}
	}
	return mix
}

// ProfileNames returns the profile names, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(Profiles))
	for n := range Profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkProfile reports an unknown profile name.
func checkProfile(name string) error {
	if _, ok := Profiles[name]; !ok {
		return fmt.Errorf("scenarios: unknown profile %q (known: %s)", name, strings.Join(ProfileNames(), ", "))
	}
	return nil
}

// prefix is the prefix of every key the workload's plain operations use
// (watchers watch it).
func (w *Workload) prefix() string {
	if w.Profile == ProfileKubernetes {
		return registryPrefix
	}
	return keyPrefix
}

// KeyPrefixes are the prefixes of every key the workload writes or reads: a
// secured cluster's workload user may use these keys only.
func (w *Workload) KeyPrefixes() []string {
	return []string{w.prefix(), "lease/", leasePrefix, compactRevKey}
}

// key returns the workload's i-th plain key.
func (w *Workload) key(i int) string {
	if w.Profile == ProfileKubernetes {
		r := kubeResources[i%len(kubeResources)]
		return fmt.Sprintf("%s%s/ns-%d/obj-%03d", registryPrefix, r, i/len(kubeResources)%4, i)
	}
	return fmt.Sprintf("%s%03d", keyPrefix, i)
}

// listPrefix returns the prefix a list covers: the workload's, or in the
// kubernetes profile one resource's.
func (w *Workload) listPrefix(i int) string {
	if w.Profile == ProfileKubernetes {
		return registryPrefix + kubeResources[i%len(kubeResources)] + "/"
	}
	return keyPrefix
}
