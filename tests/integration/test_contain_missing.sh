#!/bin/bash
# Without PrologFlags=Contain there is no extern step to carry a guest: a
# --vm job fails at once with that reason on its stderr (not after
# boot_timeout), the node stays idle, and a job without --vm is unaffected.
source "$(dirname "$0")/lib.sh"

cp "$SLURM_CONF" "$CLUSTER_DIR/etc/slurm.conf.contain"
restore() {
	cp "$CLUSTER_DIR/etc/slurm.conf.contain" "$SLURM_CONF"
	scontrol reconfigure >/dev/null 2>&1 || true
	rm -f "$CLUSTER_DIR/etc/slurm.conf.contain"
}
trap 'restore; cancel_test_jobs' EXIT

grep -q '^PrologFlags=Contain$' "$SLURM_CONF" || fail "the cluster's slurm.conf has no PrologFlags=Contain line"
sed -i 's/^PrologFlags=Contain$/PrologFlags=Alloc/' "$SLURM_CONF"
scontrol reconfigure
dir=$(user_workdir)

start=$SECONDS
rc=0
out=$(as_user srun --vm -N1 -n1 -c1 --mem 1G -D "$dir" true 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a --vm job ran without PrologFlags=Contain: $out"
assert_contains "$out" "slurm.conf lacks PrologFlags=Contain" "the --vm job's stderr"
((SECONDS - start < 30)) || fail "the --vm job took $((SECONDS - start)) s to fail"
assert_eq ok "$(as_user srun -N1 -n1 -D "$dir" echo ok)" "a job without --vm"
wait_until 30 "the job directories to go" runtime_dir_empty
assert_nodes_healthy
pass "refused in $((SECONDS - start)) s"
