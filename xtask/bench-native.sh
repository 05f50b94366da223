#!/bin/sh
# The kernel-side benchmark of `cargo xtask bench-guest` on this machine's own kernel:
# natively on a host whose kernel has kprobes and fentry, or in a KVM guest where
# /dev/kvm works. Runs xtask/guest/bench.sh (the same rounds as in the qemu guest) with
# small default sizes under a timeout, then renders the same report.
#
#   sudo sh xtask/bench-native.sh            # ROUNDS=3 TINY=2000 BURST=0, 600 s at most
#   sudo TINY=10000 BURST=100000 TIMEOUT=1800 sh xtask/bench-native.sh
#
# Needs root, overlayfs, tracefs at /sys/kernel/tracing, and cargo; bpftrace is optional
# (its rounds are skipped without /usr/bin/bpftrace). Leaves nothing mounted or loaded;
# kernel.bpf_stats_enabled is set back to what it was.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-native: needs root (BPF, mounts)" >&2; exit 1; }
[ -d /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing
grep -qw overlay /proc/filesystems || modprobe overlay

TIMEOUT=${TIMEOUT:-600}
export ROUNDS=${ROUNDS:-3} TINY=${TINY:-2000} BURST=${BURST:-0}
export MODES=${MODES:-none tracefs bpftrace fentry kprobe paused json csv events metrics timeline}

T=$(cargo xtask build | tail -n 1)
export T G="$(dirname "$T")/guest-ops"
export B="$(mktemp -d /tmp/copyup-bench.XXXXXX)"
# Lower and upper layers on tmpfs, as in the guest: the disk stays out of the numbers.
mount -t tmpfs -o nr_inodes=0 tmpfs "$B"
stats=$(cat /proc/sys/kernel/bpf_stats_enabled)
cleanup() {
    echo "$stats" >/proc/sys/kernel/bpf_stats_enabled
    grep -o " $B/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount "$m"; done
    umount "$B" && rmdir "$B"
}
trap cleanup EXIT

raw=target/bench-native.raw
where=native
[ -n "$(grep -w hypervisor /proc/cpuinfo)" ] && where=kvm
{
    echo "@@KERNEL $(uname -r)"
    echo "@@CLOCK $where"
    echo "@@LOAD $(cut -d' ' -f1 /proc/loadavg) / -"
    echo "@@TINY $TINY"
    echo "@@FAULT "
} >$raw
start=$(date +%s%N)
rc=0
timeout "$TIMEOUT" sh xtask/guest/bench.sh >>$raw 2>&1 || rc=$?
echo "@@WALL_MS $((($(date +%s%N) - start) / 1000000))" >>$raw
[ $rc = 0 ] || echo "bench-native: the benchmark script exited $rc (124: past ${TIMEOUT}s); partial rounds follow" >&2
cargo xtask bench-guest --from-raw $raw
