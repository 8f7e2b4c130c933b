#!/bin/bash
# A bad plugstack.conf line is an error naming the key and the accepted values.
source "$(dirname "$0")/lib.sh"

conf_dir=$(mktemp -d "$CLUSTER_DIR/tmp/plugstack-errors.XXXXXX")
chmod 0755 "$conf_dir"
trap 'rm -rf "$conf_dir"; cancel_test_jobs' EXIT

expect_config_error() { # EXPECTED ARGS...
	local expected=$1 out rc=0
	shift
	echo "$(cut -d' ' -f1-2 "$CLUSTER_DIR/etc/plugstack.conf.orig") $*" >"$conf_dir/plugstack.conf"
	sed "s|^PlugStackConfig=.*|PlugStackConfig=$conf_dir/plugstack.conf|" "$SLURM_CONF" >"$conf_dir/slurm.conf"
	chmod 0644 "$conf_dir"/*
	out=$(as_user env SLURM_CONF="$conf_dir/slurm.conf" sbatch --wrap true 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "sbatch with plugstack args '$*' succeeded: $out"
	assert_contains "$out" "$expected" "plugstack args '$*'"
}

expect_config_error "spank_vm: plugstack.conf: unknown key 'hypervsior' (keys: hypervisor, image_dir" hypervsior=kvm
expect_config_error "spank_vm: plugstack.conf: hypervisor: unknown value 'vmware' (accepted: kvm, qemu, xen)" hypervisor=vmware
expect_config_error "spank_vm: plugstack.conf: policy: unknown value 'often' (accepted: optin, always)" policy=often
expect_config_error "spank_vm: plugstack.conf: mem_reserve: malformed size 'lots'" mem_reserve=lots
expect_config_error "spank_vm: plugstack.conf: boot_timeout: 0 is out of range (accepted: 1 to 3600)" boot_timeout=0
expect_config_error "spank_vm: plugstack.conf: runtime_dir: path 'run' is not absolute" runtime_dir=run
expect_config_error "spank_vm: plugstack.conf: key 'policy' is given twice" policy=optin policy=always
expect_config_error "is not key=value" nonsense
pass
