#!/bin/bash
# `sbatch --vm` runs the batch script in the job's guest: another kernel
# (boot id), the job's cores as vCPUs pinned to the job's cpuset, the plan's
# memory, the user's identity, arguments, stdout and stderr in the --output
# and --error files, files written in the submit directory owned by the user
# on the host. `sbatch --vm=IMAGE` runs it in a guest booted from the tests'
# own site image (the script reaches it over the session: the image cannot
# see slurmd's spool), through a per-job overlay that is gone afterwards.
source "$(dirname "$0")/lib.sh"

image=svmtest-small
image_files=("$IMAGE_DIR/$image.raw" "$IMAGE_DIR/$image.image")
cleanup() {
	rm -f "${image_files[@]}"
	cancel_test_jobs
}
trap cleanup EXIT

dir=$(user_workdir)
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)

# shellcheck disable=SC2016 # expanded by the job
as_user tee "$dir/job.sh" >/dev/null <<'EOS'
#!/bin/bash
out=$PWD/facts.$SLURM_JOB_ID
{
	echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
	echo "nproc=$(nproc)"
	echo "memtotal_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
	echo "id=$(id -u):$(id -g)"
	echo "args=$#:$1|$2"
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "to stdout"
echo "to stderr" >&2
echo made-in-guest >"written.$SLURM_JOB_ID"
for _ in $(seq 1 1200); do [ -e release ] && exit 0; sleep 0.1; done
exit 3
EOS
as_user chmod +x "$dir/job.sh"

id=$(submit -D "$dir" --vm -c 2 --mem 1G -o "$dir/out.%j" -e "$dir/err.%j" "$dir/job.sh" one 'two words')
wait_until 180 "job $id's facts from the guest" test -e "$dir/facts.$id"
facts=$(cat "$dir/facts.$id")
field() { sed -n "s/^$1=//p" <<<"$facts"; }
dom="spank_vm-$(job_field "$id" BatchHost)-$id"
jd=$(job_dir "$id")

guest_boot_id=$(field boot_id)
[ -n "$guest_boot_id" ] && [ "$guest_boot_id" != "$host_boot_id" ] ||
	fail "the script ran on the host kernel (boot id $guest_boot_id)"
assert_eq 2 "$(field nproc)" "nproc in the guest of a -c 2 job"
guest_mib=$(sed -n 's/^guest_mib=//p' "$jd/plan")
mem_kib=$(field memtotal_kib)
# MemTotal is the guest's RAM less what its kernel reserved for itself.
((mem_kib <= guest_mib * 1024 && mem_kib >= guest_mib * 1024 * 85 / 100)) ||
	fail "MemTotal $mem_kib KiB does not match the plan's $guest_mib MiB"
pins=$(domain_pins "$dom")
cpus=$(job_cpus "$id")
assert_eq "$(expand_list "$cpus")" "$(expand_list "$pins")" "vCPU pins vs the job's cpuset $cpus"
assert_eq "$(id -u "$TEST_USER"):$(id -g "$TEST_USER")" "$(field id)" "the script's identity"
assert_eq "2:one|two words" "$(field args)" "the script's arguments"
as_user touch "$dir/release"
wait_job_done "$id" 120
assert_eq COMPLETED "$(job_state "$id")" "state of job $id"
assert_eq "to stdout" "$(cat "$dir/out.$id")" "the --output file"
assert_eq "to stderr" "$(cat "$dir/err.$id")" "the --error file"
assert_eq "$TEST_USER made-in-guest" "$(stat -c %U "$dir/written.$id") $(cat "$dir/written.$id")" \
	"a file the script wrote in the submit directory"
as_user rm -f "$dir/release"

# The tests' own site image: the script runs on its disk, not the host's root.
mkdir -m 0755 "$dir.image-content"
echo "from the site image" >"$dir.image-content/svmtest-marker"
"$(helper_path spank-vm-image)" --make-disk "$IMAGE_DIR/$image.raw" --size 64M \
	--add "$dir.image-content" >/dev/null
rm -rf "$dir.image-content"
chmod 0644 "$IMAGE_DIR/$image.raw"
printf 'disk=%s.raw\nformat=raw\nhypervisors=kvm,qemu\nboot=host-kernel\n' "$image" \
	>"$IMAGE_DIR/$image.image"
before=$(sha256sum <"$IMAGE_DIR/$image.raw")
# shellcheck disable=SC2016 # expanded by the job
as_user tee "$dir/image-job.sh" >/dev/null <<'EOS'
#!/bin/sh
cat /svmtest-marker
test -e /etc/debian_version && echo "the host's root is visible"
echo "args=$#:$1"
EOS
id=$(submit -D "$dir" --vm="$image" -c 1 --mem 1G -o "$dir/image-out.%j" "$dir/image-job.sh" arg1)
wait_job_done "$id" 180
assert_eq COMPLETED "$(job_state "$id")" "state of the site-image job $id"
assert_eq "$(printf 'from the site image\nargs=1:arg1')" "$(cat "$dir/image-out.$id")" \
	"what the script printed in the site image's guest"
wait_until 30 "the job's directory and overlay to go" runtime_dir_empty
assert_eq "$before" "$(sha256sum <"$IMAGE_DIR/$image.raw")" "the site image after the job"
assert_nodes_healthy
pass "boot id $guest_boot_id, pins $pins"
