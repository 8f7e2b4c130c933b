#!/bin/bash
# spank-vm-ctl checkpoint on a running --vm-checkpoint batch job: the job's
# guest (a site image: the default guest's 9p root cannot be saved) is saved
# into the user's checkpoint directory while its script counts, and the job
# runs on: every count arrives once and in order, the job completes, the
# checkpoint's files are the user's. A job without --vm-checkpoint is
# refused by ctl with the reason.
source "$(dirname "$0")/lib.sh"

image="ckpt-tiny"
content=$(mktemp -d /tmp/svmdev-ckpt-content.XXXXXX)
cleanup() {
	cancel_test_jobs
	rm -rf "$content" "$IMAGE_DIR/$image.raw" "$IMAGE_DIR/$image.image"
}
trap cleanup EXIT

# A small site image with the agent as its init, made here.
mkdir -p "$content/var/tmp" "$content/tmp"
chmod 1777 "$content/var/tmp" "$content/tmp"
"$(helper_path spank-vm-image)" --agent "$(helper_path spank-vm-agent)" \
	--make-disk "$IMAGE_DIR/$image.raw" --size 64M --add "$content" >/dev/null
chmod 0644 "$IMAGE_DIR/$image.raw"
printf 'disk=%s.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=host-kernel\n' "$image" \
	>"$IMAGE_DIR/$image.image"

dir=$(user_workdir)
as_user mkdir "$dir/ck"
# shellcheck disable=SC2016 # expanded in the guest
as_user tee "$dir/count.sh" >/dev/null <<'EOS'
#!/bin/sh
i=0
while [ "$i" -lt 40 ]; do
	i=$((i + 1))
	echo "count $i"
	sleep 0.5
done
EOS
as_user chmod +x "$dir/count.sh"
id=$(submit -D / -o "$dir/out" --mem 512M --vm="$image" --vm-checkpoint="$dir/ck" "$dir/count.sh")
counted() { grep -q "^count $1\$" "$dir/out" 2>/dev/null; }
wait_until 180 "job $id to count to 5 in its guest" counted 5
node=$(job_field "$id" BatchHost)
ctl_bin=$(find "$CLUSTER_DIR/stage" -name spank-vm-ctl -type f | head -1)
ctl() { "$ctl_bin" --plugstack "$PLUGSTACK_CONF" --node "$node" "$@"; }
out=$(ctl checkpoint "$id" 2>&1) || fail "spank-vm-ctl checkpoint $id: $out"
echo "$out"
assert_contains "$out" "job $id: checkpoint written to $dir/ck; the job runs on" "ctl's report"
ckpt="$dir/ck/spank_vm-job$id"
for f in manifest memory disk.qcow2; do
	assert_eq "$TEST_USER 600" "$(stat -c '%U %a' "$ckpt/$f")" "owner and mode of the checkpoint's $f"
done
assert_contains "$(cat "$ckpt/manifest")" "job=$id" "the manifest"
assert_contains "$(cat "$(job_dir "$id")/guest/mux.log")" "resumed: the same guest" "the mux's log"
wait_job_done "$id" 180
assert_eq COMPLETED "$(job_state "$id")" "job $id after its checkpoint"
assert_eq "$(seq 1 40 | sed 's/^/count /')" "$(cat "$dir/out")" "the job's output across the checkpoint"
[ -e "$ckpt/manifest" ] || fail "the finished job's checkpoint was removed"

# A job that did not ask for checkpoints.
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null
id=$(submit -o /dev/null --vm --mem 512M "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
node=$(job_field "$id" BatchHost)
out=$(ctl checkpoint "$id" 2>&1) && fail "ctl checkpoint of a job without --vm-checkpoint: $out"
assert_eq "spank_vm: spank-vm-ctl: job $id did not ask for checkpoints (--vm-checkpoint=DIR)" \
	"$out" "ctl's refusal"
as_user touch "$dir/release"
wait_job_done "$id"
assert_nodes_healthy
pass "ctl checkpoint of a counting job: checkpoint written, 40 counts in order, job completed"
