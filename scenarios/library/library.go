// Package library is the scenario library: the named scenario files shipped
// in this folder (embedded in the binary), which `harness scenarios` lists and
// `harness run --scenario NAME` runs. A file is named after its scenario
// (NAME.yaml); its description says what it exercises. A new fault kind or
// workload brings its scenarios here.
package library

import (
	"bytes"
	"embed"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/havoclab/havoc/scenarios/scenario"
)

//go:embed *.yaml
var files embed.FS

// Entry is one library scenario: the file as shipped and as decoded.
type Entry struct {
	Scenario *scenario.Scenario
	// File is the YAML as shipped.
	File []byte
}

// Pending are scenarios the library promises but the current fault set cannot
// express: each with what it needs. They are listed, never faked.
var Pending = []struct{ Name, Description, Needs string }{}

// All returns every library scenario, sorted by name. A file that does not
// decode, or whose name differs from its scenario's, is an error (a test
// keeps the library valid).
func All() ([]Entry, error) {
	names, err := files.ReadDir(".")
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range names {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		s, err := scenario.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("library %s: %w", e.Name(), err)
		}
		if want := strings.TrimSuffix(e.Name(), path.Ext(e.Name())); s.Name != want {
			return nil, fmt.Errorf("library %s: the scenario is named %q", e.Name(), s.Name)
		}
		out = append(out, Entry{Scenario: s, File: b})
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Scenario.Name, b.Scenario.Name) })
	return out, nil
}

// Get returns the library scenario name (ok false if there is none).
func Get(name string) (Entry, bool, error) {
	all, err := All()
	if err != nil {
		return Entry{}, false, err
	}
	for _, e := range all {
		if e.Scenario.Name == name {
			return e, true, nil
		}
	}
	return Entry{}, false, nil
}

// Names lists the library's scenario names, sorted.
func Names() []string {
	all, _ := All()
	names := make([]string, len(all))
	for i, e := range all {
		names[i] = e.Scenario.Name
	}
	return names
}
