#!/bin/bash
# Sessions of the guest agent: exit codes and signals come back as the
# program's status, identity, groups, umask and environment are exactly the
# ones sent, the extra stream is a socket at its fd, stdin and large
# outputs flow under the windows, sessions run concurrently, root and
# unknown programs are refused, malformed, oversize and wrong-version frames
# get an ERROR without harming the next connection, and libvirt's graceful
# shutdown works.
source "$(dirname "$0")/guest_agent_lib.sh"

status_of() { # CLIENT ARGS...: prints the status agent_client exited with
	local rc=0
	guest_run "$@" >/dev/null 2>&1 || rc=$?
	echo "$rc"
}

guest_boot

for code in 0 1 42; do
	assert_eq "$code" "$(status_of -- sh -c "exit $code")" "status of 'exit $code'"
done
assert_eq $((128 + 9)) "$(status_of -- sh -c 'kill -KILL $$')" "status of a program killed by SIGKILL"
assert_eq $((128 + 15)) "$(status_of -- sh -c 'kill -TERM $$')" "status of a program killed by SIGTERM"

# Exactly the environment sent: nothing added (env is exec'd directly).
env_out=$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 --uid "$(id -u "$TEST_USER")" \
	--gid "$(id -g "$TEST_USER")" --cwd / --env PATH=/usr/bin:/bin --env 'ODD=a=b c' -- env)
assert_eq "$(printf 'PATH=/usr/bin:/bin\nODD=a=b c')" "$env_out" "the program's environment"
assert_eq "$GUEST_SHARE" "$(guest_run -- pwd)" "the working directory"
assert_eq "0027" "$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 --uid "$(id -u "$TEST_USER")" \
	--gid "$(id -g "$TEST_USER")" --umask 027 -- /bin/sh -c umask)" "the umask"

assert_eq "$(id -g "$TEST_USER") 100 4242" "$(guest_run --group 100 --group 4242 -- id -G)" \
	"groups in the guest"

# The extra stream: a socket at the fd asked for, its bytes on stream 3.
extra=$(guest_run --extra-fd 7 -- sh -c 'echo via-extra >&7; ls -l /proc/self/fd/7')
assert_contains "$extra" "via-extra" "bytes written to the extra fd"
assert_contains "$extra" "socket:" "what the extra fd is"

# stdout and stderr stay apart.
out=$(guest_run -- sh -c 'echo to-out; echo to-err >&2' 2>/dev/null)
assert_eq "to-out" "$out" "stdout alone"
err=$(guest_run -- sh -c 'echo to-out; echo to-err >&2' 2>&1 >/dev/null)
assert_eq "to-err" "$err" "stderr alone"

# stdin in and 8 MiB out: many windows' worth in both directions.
in_sum=$(head -c 3000000 /dev/urandom | tee "$GUEST_DIR/in.bin" | sha256sum | cut -d' ' -f1)
out_sum=$(guest_run --stdin -- sha256sum <"$GUEST_DIR/in.bin" | cut -d' ' -f1)
assert_eq "$in_sum" "$out_sum" "sha256 of 3 MB through stdin"
big=$(guest_run -- sh -c 'head -c 8388608 /dev/zero' | wc -c)
assert_eq 8388608 "$big" "bytes of an 8 MiB stdout"

# 4 concurrent sessions on one connection: each waits (bounded) until all 4
# have started, which only finishes if they run at the same time.
barrier="$GUEST_SHARE/barrier"
mkdir "$barrier"
chown "$TEST_USER" "$barrier"
script='touch "$0/$$"; i=0; while [ "$(ls "$0" | wc -l)" -lt 4 ]; do i=$((i+1)); [ $i -lt 600 ] || exit 9; sleep 0.1; done; echo done'
out=$(guest_run --parallel 4 -- sh -c "$script" "$barrier")
assert_eq 4 "$(grep -c '^done$' <<<"$out")" "sessions that saw all 4 running"

# Refusals: root (the default guest has no spank_vm.allow_root=1), a program
# that does not exist.
set +e
root_err=$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 --uid 0 --gid 0 -- id 2>&1)
root_rc=$?
missing_err=$(guest_run -- no-such-program-here 2>&1)
missing_rc=$?
set -e
assert_eq 125 "$root_rc" "status when uid 0 is asked for"
assert_contains "$root_err" "ERROR identity refused" "answer to uid 0"
assert_eq 125 "$missing_rc" "status of a missing program"
assert_contains "$missing_err" "ERROR exec failed" "answer to a missing program"
assert_contains "$missing_err" "cannot execute no-such-program-here in the guest: No such file or directory" \
	"reason for a missing program"

# Faulty frames get ERROR(0, ...) and the connection closed; the agent
# survives and serves the next connection.
for fault in "flags:malformed" "oversize:too large" "version:version"; do
	set +e
	bad=$("$AGENT_CLIENT" --socket "$GUEST_SOCK" --timeout 60 --bad-frame "${fault%%:*}" 2>&1)
	set -e
	assert_contains "$bad" "ERROR ${fault#*:} on session 0" "answer to a ${fault%%:*} fault"
	wait_until 30 "the agent to serve a new connection" guest_run -- true
	assert_eq 0 "$(status_of -- true)" "a session after the ${fault%%:*} fault"
done

# libvirt's graceful shutdown (the ACPI power button, tried first by
# spank-vm-provision stop) powers the guest off well before the timeout.
start=$SECONDS
"$SPANK_VM_PROVISION" stop --name "$GUEST_NAME" --timeout 60
((SECONDS - start < 30)) || fail "a graceful stop took $((SECONDS - start))s"
grep -q "spank_vm-agent: power button pressed" "$GUEST_DIR/console.log" ||
	fail "the guest did not power off through its power button"
domain_gone "$GUEST_NAME" || fail "$GUEST_NAME still exists after stop"
pass
