# Sourced by .ci/run, scripts/test.sh and scripts/nightly.sh (not run on its own).
#
#   phase NAME LIMIT CMD [ARG...]
#
# runs CMD under `timeout LIMIT` (LIMIT as timeout(1) takes it: 90s, 20m), prints
# its elapsed time, and records "NAME LIMIT SECONDS STATUS" in $HAVOC_PHASE_LOG so
# that the last script can print every phase's time in one table (phase_table).
# When CMD outlives LIMIT, timeout kills its whole process group (go test and the
# test binaries it started) and phase prints "phase NAME exceeded LIMIT". A failed
# phase stops the calling script with CMD's status.
#
# CMD must be a program, not a shell function: a script runs one of its own
# functions as a phase by calling itself (see scripts/test.sh --phase).
# Phases do not nest: timeout puts CMD in a process group of its own, so an outer
# timeout would not reach an inner one's children.

# The outermost script makes the log and removes it when it exits.
if [ -z "${HAVOC_PHASE_LOG:-}" ]; then
	HAVOC_PHASE_LOG=$(mktemp -t havoc-phases.XXXXXX)
	export HAVOC_PHASE_LOG
	trap 'rm -f "$HAVOC_PHASE_LOG"' EXIT
fi

phase() {
	local name=$1 limit=$2
	shift 2
	echo "== $name (limit $limit)"
	local t0=$SECONDS rc=0 pid
	# In the background so that an interrupt (Ctrl-C, CI cancelling) can be passed
	# to timeout's process group, which does not get the terminal's signals.
	timeout -k 30s "$limit" "$@" &
	pid=$!
	trap 'kill -TERM -- -'"$pid"' 2>/dev/null; exit 130' INT TERM
	wait "$pid" || rc=$?
	trap - INT TERM
	local dt=$((SECONDS - t0)) status=ok
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		status=timeout
	elif [ "$rc" -ne 0 ]; then
		status="exit-$rc"
	fi
	echo "$name $limit $dt $status" >>"$HAVOC_PHASE_LOG"
	echo "-- $name: $(phase_duration "$dt") ($status)"
	if [ "$status" = timeout ]; then
		echo "phase $name exceeded $limit" >&2
	fi
	if [ "$rc" -ne 0 ]; then
		phase_table >&2
		exit "$rc"
	fi
}

# phase_duration SECONDS prints 4m07s.
phase_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# phase_table prints every phase recorded in $HAVOC_PHASE_LOG with its time and limit.
phase_table() {
	local name limit dt status total=0
	echo "== phase times"
	while read -r name limit dt status; do
		printf '   %-14s %8s  (limit %s) %s\n' "$name" "$(phase_duration "$dt")" "$limit" "$status"
		total=$((total + dt))
	done <"$HAVOC_PHASE_LOG"
	printf '   %-14s %8s\n' total "$(phase_duration "$total")"
}
