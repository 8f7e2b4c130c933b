#!/bin/bash
# A guest that cannot boot fails the job with the reason on the job's stderr,
# quickly (not after boot_timeout), leaves the node idle and nothing behind:
# - a site image whose root device does not exist (the agent's fatal line);
# - a kernel that panics (here: an initramfs without init, as a broken
#   site configuration would give): panic=-1 ends the guest at once.
source "$(dirname "$0")/lib.sh"

image=svmtest-noroot
image_files=("$IMAGE_DIR/$image.raw" "$IMAGE_DIR/$image.image")
restore() {
	cp "$CLUSTER_DIR/etc/plugstack.conf.orig" "$PLUGSTACK_CONF"
	rm -f "${image_files[@]}" "$IMAGE_DIR/svmtest-empty-initrd.img"
}
trap 'restore; cancel_test_jobs' EXIT

dir=$(user_workdir)

# expect_failed_job REASON SBATCH_ARGS...: the job fails within the bound,
# its stderr names REASON, nothing of it stays.
expect_failed_job() {
	local reason=$1 id start=$SECONDS
	shift
	id=$(submit -D "$dir" -o "$dir/out.%j" -e "$dir/err.%j" "$@" --wrap 'echo ran')
	wait_job_done "$id" 150
	assert_eq FAILED "$(job_state "$id")" "state of job $id"
	assert_contains "$(cat "$dir/err.$id")" "$reason" "job $id's stderr"
	[ ! -s "$dir/out.$id" ] || fail "job $id's script ran: $(cat "$dir/out.$id")"
	((SECONDS - start < 120)) || fail "job $id took $((SECONDS - start)) s to fail"
	wait_until 30 "job $id's directory to go" runtime_dir_empty
	[ -z "$(virsh -c "$LIBVIRT_URI" list --all --name | grep "^spank_vm-.*-$id$" || true)" ] ||
		fail "job $id left its domain"
	assert_nodes_healthy
	echo "job $id failed in $((SECONDS - start)) s: $(grep -m1 'spank_vm:' "$dir/err.$id")"
}

"$(helper_path spank-vm-image)" --make-disk "$IMAGE_DIR/$image.raw" --size 32M >/dev/null
chmod 0644 "$IMAGE_DIR/$image.raw"
printf 'disk=%s.raw\nformat=raw\nroot=/dev/vdb\n' "$image" >"$IMAGE_DIR/$image.image"
expect_failed_job "the guest's console says: spank_vm-agent: fatal: root device /dev/vdb did not appear" \
	--vm="$image" -c 1 --mem 1G

# A kernel panic: the node's initramfs has no init.
empty="$IMAGE_DIR/svmtest-empty-initrd.img"
(cd "$(mktemp -d)" && find . | cpio --quiet -o -H newc | gzip -n >"$empty")
chmod 0644 "$empty"
sed "s|\$| initrd=$empty|" "$CLUSTER_DIR/etc/plugstack.conf.orig" >"$PLUGSTACK_CONF"
expect_failed_job "Kernel panic - not syncing" --vm -c 1 --mem 1G
pass
