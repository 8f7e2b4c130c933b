#!/bin/bash
# What --vm costs a Slurm user, side by side in one run on the local cluster
# (prints figures; the targets are printed, not asserted):
#   1. a batch job with --vm vs without: seconds from submit to completion
#      (polled job state, not sbatch --wait, which measures its own polling),
#      and the guest's boot time from its --vm-debug line;
#   2. a step in a running guest vs a step on the host, each inside its own
#      allocation: `srun true`, added milliseconds (target <= 30 ms);
#   3. `srun true` without --vm, plugin loaded vs not (target ratio <= 1.02).
source "$(dirname "$0")/../integration/lib.sh"

JOBS=${BENCH_JOBS:-3}
STEPS=${BENCH_STEPS:-15}
dir=$(user_workdir)
restore() { cp "$CLUSTER_DIR/etc/plugstack.conf.orig" "$PLUGSTACK_CONF"; }
trap 'restore; cancel_test_jobs' EXIT

now_ns() { date +%s%N; }

median() { # numbers...
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# Seconds from sbatch to the job's completion, state polled every 20 ms.
job_seconds() { # SBATCH ARGS...
	local start id
	start=$(now_ns)
	id=$(submit -D "$dir" -o "$dir/bench.%j" -e "$dir/bench.%j" "$@" --wrap true)
	until job_is_done "$id"; do sleep 0.02; done
	[ "$(job_state "$id")" == COMPLETED ] || fail "job $id: $(job_state "$id")"
	awk -v a="$start" -v b="$(now_ns)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
	echo " $id"
}

bench_batch() {
	local plain=() vm=() boots=() r i
	for ((i = 0; i < JOBS; i++)); do
		r=$(job_seconds -c 1 --mem 1G)
		plain+=("${r% *}")
		r=$(job_seconds --vm --vm-debug -c 1 --mem 1G)
		vm+=("${r% *}")
		boots+=("$(sed -n 's/.*guest ready: .*boot \([0-9.]*\) s.*/\1/p' "$dir/bench.${r#* }")")
	done
	awk -v p="$(median "${plain[@]}")" -v v="$(median "${vm[@]}")" -v b="$(median "${boots[@]}")" \
		-v n="$JOBS" 'BEGIN { printf "bench.jobs: batch job submit to completion (median of %d): " \
			"without --vm %.2f s, with --vm %.2f s, added %.2f s, of which guest boot %.2f s (TCG)\n",
			n, p, v, v - p, b }'
}

# Milliseconds per `srun -n1 true` step inside an allocation (median).
# shellcheck disable=SC2016 # expanded by the allocation's shell
step_driver='for ((i = 0; i < $1; i++)); do
	t0=$(date +%s%N); srun -n1 true; echo $((($(date +%s%N) - t0) / 1000))
done | sort -n | awk "{ v[NR] = \$1 } END { printf \"%.1f\", v[int((NR + 1) / 2)] / 1000 }"'

bench_steps() {
	local plain vm
	plain=$(as_user salloc -N1 -n1 -c1 --mem 1G bash -c "$step_driver" bash "$STEPS" 2>/dev/null)
	vm=$(as_user salloc --vm -N1 -n1 -c1 --mem 1G bash -c "srun -n1 true; $step_driver" bash \
		"$STEPS" 2>/dev/null) # the first step waits for the guest to boot
	awk -v p="$plain" -v v="$vm" -v n="$STEPS" 'BEGIN {
		printf "bench.jobs: srun -n1 true in an allocation (median of %d): on the host %.1f ms, " \
			"in the guest %.1f ms, added %.1f ms (target <= 30 ms; TCG)\n", n, p, v, v - p }'
}

bench_plugin() {
	local loaded=() unloaded=() i t0
	for ((i = 0; i < STEPS; i++)); do # interleaved
		restore
		t0=$(now_ns)
		as_user srun -N1 -n1 true
		loaded+=($((($(now_ns) - t0) / 1000)))
		: >"$PLUGSTACK_CONF"
		t0=$(now_ns)
		as_user srun -N1 -n1 true
		unloaded+=($((($(now_ns) - t0) / 1000)))
	done
	restore
	awk -v l="$(median "${loaded[@]}")" -v u="$(median "${unloaded[@]}")" -v n="$STEPS" 'BEGIN {
		printf "bench.jobs: srun -N1 -n1 true (median of %d): plugin loaded %.1f ms, not loaded " \
			"%.1f ms, ratio %.3f (target <= 1.02)\n", n, l / 1000, u / 1000, l / u }'
}

bench_plugin
bench_steps
bench_batch
