#!/bin/bash
# A request that did not come through our validation (a user's own client)
# never fails the prolog: the job runs, the reason is recorded for the job,
# the node stays idle, and the epilog removes it all.
source "$(dirname "$0")/lib.sh"

dir=$(user_workdir)
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
		sbatch --parsable -o /dev/null "$dir/held.sh")
	wait_until 60 "job $id to start" test -e "$dir/started.$id"
	jd=$(job_dir "$id")
	[ ! -e "$jd/request" ] || fail "forged request '$forged' was recorded"
	assert_contains "$(cat "$jd/request.error")" "request" "recorded reason for '$forged'"
	as_user touch "$dir/release"
	wait_job_done "$id"
	as_user rm -f "$dir/release"
	runtime_dir_empty || fail "epilog left $(find "$RUNTIME_DIR" -mindepth 2)"
done
grep -q "refusing its VM request" "$CLUSTER_DIR"/log/slurmd.*.log ||
	fail "the refusal is not in the slurmd log"
assert_nodes_healthy
pass
