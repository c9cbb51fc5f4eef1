//go:build !havoc_mutants

package mutant

// Enabled reports whether this binary was built with the havoc_mutants tag.
const Enabled = false

// On reports whether mutant id is active: never, without the havoc_mutants tag
// (a constant, so every guarded site compiles away).
func On(ID) bool { return false }

// Active returns the active mutant's ID ("" when none).
func Active() ID { return "" }
