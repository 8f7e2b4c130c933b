#!/bin/bash
# A request that did not come through our validation (a user's own client)
# never fails the prolog: the node stays idle, the job's tasks fail with the
# reason on their stderr, and the epilog removes it all.
source "$(dirname "$0")/lib.sh"

dir=$(user_workdir)
rm -rf "$(user_home)"/hostile-client.??????
client_dir=$(as_user mktemp -d "$(user_home)/hostile-client.XXXXXX")
cp "$HOSTILE_CLIENT_SO" "$client_dir/hostile.so"
chmod 0755 "$client_dir/hostile.so"
echo "required $client_dir/hostile.so" >"$client_dir/plugstack.conf"
sed "s|^PlugStackConfig=.*|PlugStackConfig=$client_dir/plugstack.conf|" "$SLURM_CONF" >"$client_dir/slurm.conf"
chmod 0644 "$client_dir/plugstack.conf" "$client_dir/slurm.conf"
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null

for forged in "format=1 image=../../etc/shadow" "format=1 image=host checkpoint=relative" \
	"format=9 image=host" "garbage" "format=1 image=host root=1" \
	"format=1 image=host%0Aimage=x"; do
	id=$(as_user env SLURM_CONF="$client_dir/slurm.conf" HOSTILE_VM_REQUEST="$forged" \
		sbatch --parsable -o "$dir/out.%j" "$dir/held.sh")
	wait_job_done "$id"
	# The job asked for a VM it cannot have: it fails with the reason, and
	# never runs on the host instead.
	assert_eq FAILED "$(job_state "$id")" "job with forged request '$forged'"
	assert_contains "$(cat "$dir/out.$id")" "spank_vm: job $id: the VM request was refused: request" \
		"the job's output for '$forged'"
	[ ! -e "$dir/started.$id" ] || fail "job $id ran its script despite the refused request"
	runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"
done
grep -q "refusing its VM request" "$CLUSTER_DIR"/log/slurmd.*.log ||
	fail "the refusal is not in the slurmd log"
assert_nodes_healthy
pass
