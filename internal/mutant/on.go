//go:build havoc_mutants

package mutant

import (
	"fmt"
	"os"
)

// Enabled reports whether this binary was built with the havoc_mutants tag.
const Enabled = true

var active = func() ID {
	id := ID(os.Getenv(EnvVar))
	if _, ok := Lookup(id); id != "" && !ok {
		fmt.Fprintf(os.Stderr, "%s=%q: no such mutant\n", EnvVar, id)
		os.Exit(2)
	}
	return id
}()

// On reports whether mutant id is the one HAVOC_MUTANT names.
func On(id ID) bool { return active == id }

// Active returns the active mutant's ID ("" when none).
func Active() ID { return active }
