#!/bin/bash
# spank-vm-ctl: list, show and console describe a running --vm job's guest;
# gc removes the guest and runtime directory of a job Slurm does not run
# (here a stray one made by hand) and leaves running jobs alone; when Slurm
# cannot be asked, gc removes nothing.
source "$(dirname "$0")/lib.sh"

ctl_bin=$(find "$CLUSTER_DIR/stage" -name spank-vm-ctl -type f | head -1)
provision=$(helper_path spank-vm-provision)
kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
initrd=/boot/initrd.img-${kernel#/boot/vmlinuz-}
restore() { cp "$CLUSTER_DIR/etc/plugstack.conf.orig" "$PLUGSTACK_CONF"; }
stray=999999
cleanup() {
	restore
	"$provision" stop --name "spank_vm-svm1-$stray" --timeout 0 >/dev/null 2>&1 || true
	local stray_dir
	stray_dir=$(node_runtime_dir svm1)/$stray
	rm -rf "${stray_dir:?}"
}
trap 'cleanup; cancel_test_jobs' EXIT
ctl() { "$ctl_bin" --plugstack "$PLUGSTACK_CONF" --node svm1 "$@"; }

dir=$(user_workdir)
held_job_script "$dir" | as_user tee "$dir/held.sh" >/dev/null
id=$(submit -o /dev/null --vm -c 1 --mem 1G -w svm1 "$dir/held.sh")
wait_until 120 "job $id to start" test -e "$dir/started.$id"
domain_running() { [ "$(virsh -c "$LIBVIRT_URI" domstate "spank_vm-svm1-$id" 2>/dev/null | head -1)" == running ]; }
wait_until 120 "the guest of job $id" domain_running

listing=$(ctl list)
line=$(awk -v id="$id" '$1 == id' <<<"$listing")
[ -n "$line" ] || fail "job $id not in: $listing"
assert_contains "$line" "svm1" "list"
assert_contains "$line" "running" "list"
assert_eq "$(sed -n 's/^host_pus=//p' "$(job_dir "$id")/plan")" "$(awk '{ print $5 }' <<<"$line")" "list PUs"
shown=$(ctl show "$id")
assert_contains "$shown" "--- plan" "show"
assert_contains "$shown" "image=host" "show"
wait_until 60 "console output" test -s "$(job_dir "$id")/guest/console.log"
[ -n "$(ctl console "$id" --lines 5)" ] || fail "console printed nothing"

# A stray guest and directory of a job Slurm does not know.
extra=()
grep -q 'hard_limit=no' "$PLUGSTACK_CONF" && extra+=(--no-hard-limit)
mkdir -p "$(node_runtime_dir svm1)/$stray/guest"
chown "$TEST_USER" "$(node_runtime_dir svm1)/$stray/guest"
"$provision" start --cores 1 --mem 512M --reserve 128M --hypervisor qemu \
	--name "spank_vm-svm1-$stray" --owner "$(id -u "$TEST_USER"):$(id -g "$TEST_USER")" \
	--kernel "$kernel" --initrd "$initrd" --dir "$(node_runtime_dir svm1)/$stray/guest" \
	"${extra[@]}" >/dev/null
assert_contains "$(ctl gc --dry-run)" "would remove job $stray" "gc --dry-run"
virsh -c "$LIBVIRT_URI" domstate "spank_vm-svm1-$stray" >/dev/null || fail "dry run removed the guest"
out=$(SLURM_CONF=/nonexistent ctl gc 2>&1) && fail "gc without Slurm succeeded: $out"
assert_contains "$out" "nothing removed" "gc without Slurm"
[ -d "$(node_runtime_dir svm1)/$stray" ] || fail "gc without Slurm removed the stray directory"
ctl gc >/dev/null
! virsh -c "$LIBVIRT_URI" domstate "spank_vm-svm1-$stray" >/dev/null 2>&1 || fail "gc left the stray guest"
[ ! -e "$(node_runtime_dir svm1)/$stray" ] || fail "gc left the stray directory"
domain_running || fail "gc touched the running job $id"
as_user touch "$dir/release"
wait_job_done "$id"
pass
