#!/bin/bash
# Steps run in the job's guest and behave as they do without --vm:
# - `srun --vm -n 2`: both ranks in one guest, another kernel than the host's;
# - `salloc --vm` + several sruns: one guest for all of them (same boot id),
#   and through it: exit codes and signals as srun reports them without
#   --vm, stdin (`echo x | srun cat`), --output/--error files, --chdir,
#   --export, the user's identity;
# - a batch script's exit code and signal in the job's record, as without --vm;
# - two jobs at once on the two nodes each get their own guest.
source "$(dirname "$0")/lib.sh"

dir=$(user_workdir)
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)

# srun --vm -n 2: a job of its own, both ranks in its guest.
out=$(as_user srun --vm -N1 -n2 -c1 --mem 1G -D "$dir" \
	sh -c 'echo "$SLURM_PROCID $(cat /proc/sys/kernel/random/boot_id)"' | sort)
assert_eq 2 "$(wc -l <<<"$out")" "lines from srun --vm -n 2"
ids=$(awk '{ print $2 }' <<<"$out" | sort -u)
assert_eq 1 "$(wc -l <<<"$ids")" "guests seen by the 2 ranks (output: $out)"
[ "$ids" != "$host_boot_id" ] || fail "srun --vm ran on the host kernel"
assert_eq "0 1" "$(awk '{ print $1 }' <<<"$out" | paste -sd' ')" "ranks of srun --vm -n 2"

# What srun reports without --vm: the reference for the same steps in a guest.
status_of() { # SRUN ARGS...: srun's exit status
	local rc=0
	as_user "$@" </dev/null >/dev/null 2>&1 || rc=$?
	echo "$rc"
}
plain_exit=$(status_of srun -N1 -n1 sh -c 'exit 3')
plain_signal=$(status_of srun -N1 -n1 sh -c 'kill -TERM $$')

# One allocation, one guest, many steps. The driver runs on the host (salloc's
# shell); every srun in it runs in the allocation's guest.
# shellcheck disable=SC2016 # expanded by the driver
as_user tee "$dir/driver.sh" >/dev/null <<'EOS'
#!/bin/bash
cd "$1"
status() { local rc=0; "$@" </dev/null >/dev/null 2>&1 || rc=$?; echo "$rc"; }
{
	echo "boot1=$(srun -n1 cat /proc/sys/kernel/random/boot_id)"
	echo "boot2=$(srun -n1 cat /proc/sys/kernel/random/boot_id)"
	echo "exit=$(status srun -n1 sh -c 'exit 3')"
	echo "signal=$(status srun -n1 sh -c 'kill -TERM $$')"
	echo "stdin=$(echo x | srun -n1 cat)"
	echo "chdir=$(srun -n1 -D /tmp pwd)"
	echo "export=$(SVM_UNSEEN=1 srun -n1 --export=PATH,SVM_X='a b=c' sh -c 'echo "$SVM_X|${SVM_UNSEEN:-unset}"')"
	echo "id=$(srun -n1 id -u):$(srun -n1 id -g):$(srun -n1 id -un)"
	srun -n1 -o out.txt -e err.txt sh -c 'echo to-out; echo to-err >&2'
	srun -n1 sh -c 'echo made-in-guest >written.txt'
	echo "parallel=$( (srun -n1 --overlap cat /proc/sys/kernel/random/boot_id & srun -n1 --overlap cat /proc/sys/kernel/random/boot_id; wait) | sort -u | wc -l)"
} >facts.tmp
mv facts.tmp facts
EOS
as_user salloc --vm -N1 -n1 -c1 --mem 1G bash "$dir/driver.sh" "$dir" >/dev/null 2>&1 ||
	fail "salloc --vm failed"
facts=$(cat "$dir/facts")
field() { sed -n "s/^$1=//p" <<<"$facts"; }
boot1=$(field boot1)
[ -n "$boot1" ] && [ "$boot1" != "$host_boot_id" ] || fail "salloc's step ran on the host ($boot1)"
assert_eq "$boot1" "$(field boot2)" "boot id of the second srun in the same allocation"
assert_eq "$plain_exit" "$(field exit)" "srun's status for 'exit 3' (without --vm: $plain_exit)"
assert_eq "$plain_signal" "$(field signal)" "srun's status for SIGTERM (without --vm: $plain_signal)"
assert_eq x "$(field stdin)" "echo x | srun cat"
assert_eq /tmp "$(field chdir)" "srun --chdir"
assert_eq "a b=c|unset" "$(field export)" "srun --export"
assert_eq "$(id -u "$TEST_USER"):$(id -g "$TEST_USER"):$TEST_USER" "$(field id)" "identity in the guest"
assert_eq to-out "$(cat "$dir/out.txt")" "srun --output"
assert_eq to-err "$(cat "$dir/err.txt")" "srun --error"
assert_eq "$TEST_USER made-in-guest" "$(stat -c %U "$dir/written.txt") $(cat "$dir/written.txt")" \
	"a file a step wrote"
assert_eq 1 "$(field parallel)" "guests seen by two parallel steps"

# A batch script's exit code and terminating signal reach the job's record
# (State, ExitCode: what sacct shows) exactly as without --vm.
job_outcome() { # SBATCH ARGS...: "STATE EXITCODE" of the finished job
	local id
	id=$(submit -D "$dir" -o /dev/null -c 1 --mem 1G "$@")
	wait_job_done "$id" 180
	echo "$(job_state "$id") $(job_field "$id" ExitCode)"
}
for script in 'exit 3' 'kill -TERM $$'; do
	plain=$(job_outcome --wrap "$script")
	assert_eq "$plain" "$(job_outcome --vm --wrap "$script")" "the record of a --vm job doing '$script'"
done

# Two jobs at once, one per node: two guests.
# shellcheck disable=SC2016 # expanded by the job
as_user tee "$dir/held.sh" >/dev/null <<EOS
#!/bin/bash
cat /proc/sys/kernel/random/boot_id >"$dir/boot.\$SLURM_JOB_ID"
for _ in \$(seq 1 1200); do [ -e "$dir/release" ] && exit 0; sleep 0.1; done
exit 3
EOS
a=$(submit -o /dev/null --vm -c 1 --mem 1G -w svm1 "$dir/held.sh")
b=$(submit -o /dev/null --vm -c 1 --mem 1G -w svm2 "$dir/held.sh")
wait_until 180 "both jobs' guests to run their scripts" test -s "$dir/boot.$a" -a -s "$dir/boot.$b"
[ "$(cat "$dir/boot.$a")" != "$(cat "$dir/boot.$b")" ] || fail "jobs $a and $b share a guest"
for job in "svm1 $a" "svm2 $b"; do
	state=$(virsh -c "$LIBVIRT_URI" domstate "spank_vm-${job% *}-${job#* }" 2>&1)
	assert_eq running "$state" "the guest of job ${job#* } on ${job% *}"
done
as_user touch "$dir/release"
wait_job_done "$a"
wait_job_done "$b"
wait_until 30 "the epilogs to clean up" runtime_dir_empty
assert_nodes_healthy
pass "exit $plain_exit and SIGTERM $plain_signal as without --vm"
