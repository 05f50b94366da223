# Guest side of `cargo xtask bench-guest`: three workloads run untraced, under tracefs
# kprobe events, under bpftrace and under copyup-trace with fentry and with kprobes and
# in each output mode, alternating in one boot. Times come from guest-ops
# (CLOCK_MONOTONIC, ns); under `-icount` they count emulated instructions. Prints one `@@ROUND` line per round and
# `@@STATS`/`@@REPORT` lines beside them; xtask/src/guestbench.rs reports.

# The paths can be set from outside: xtask/bench-native.sh runs this script on a host.
T=${T:-/bin/copyup-trace}
G=${G:-/bin/guest-ops}
TR=/sys/kernel/tracing
B=${B:-/tmp/bench}
ROUNDS=${ROUNDS:-3}
# MODES, the modes to alternate, comes from xtask (guestbench::Mode).
: "${MODES:?}"
TINY=${TINY:-10000}
SYSCALLS=${SYSCALLS:-100000}
echo "@@SYSCALLS $SYSCALLS"
BURST=${BURST:-100000}

# image: an image-like tree, sizes like the demo's (27.4 MiB in 421 files).
I=$B/image/tree
for i in 1 2 3 4 5 6 7 8; do $G mkfiles $I/lib/m$i 1 $((i * 65536)); done
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do $G mkfiles $I/assets/img$i 1 $((i * 3072)); done
$G mkfiles $I/data 1 25165824
$G mkfiles $I/share 400 2048
# tiny: many tiny files, where the per-copy-up cost dominates.
$G mkfiles $B/tiny/tree/f $TINY 100
# syscalls: a process that touches no overlay, for what a tracer costs the rest of the
# host (a syscall tracepoint slows every syscall of every thread). Its rounds mount an
# overlay of this empty directory like the others', and leave it alone.
mkdir -p $B/syscalls
# Off while workloads are timed: with it on, every BPF program run reads the clock twice,
# a cost tracefs does not pay and users do not. BPF time is measured in rounds of its own.
echo 0 >/proc/sys/kernel/bpf_stats_enabled
STATS=0

# field NAME FILE: the number after NAME in FILE.
field() { sed -n "s/.*$1[^0-9]*\([0-9][0-9]*\).*/\1/p" "$2" | head -n 1; }

# The bpftrace equivalent of what copyup-trace reports per copy-up: pid, comm, bytes,
# latency and the chown's filename, printed as each copy-up completes. BEGIN fires once
# every probe is attached.
BT='BEGIN { printf("@ready\n"); }
kprobe:do_fchownat { @fn[tid] = arg1; }
kretprobe:do_fchownat { delete(@fn[tid]); }
kprobe:ovl_copy_up_one { @start[tid] = nsecs; @bytes[tid] = 0; }
kprobe:ovl_copy_up_file { @bytes[tid] += arg3; }
kretprobe:ovl_copy_up_one /@start[tid]/ {
  printf("%d %s %d %d %s\n", pid, comm, @bytes[tid], nsecs - @start[tid], str(@fn[tid]));
  delete(@start[tid]); delete(@bytes[tid]);
}'

# workload: $w's command (chown -R of the overlay's tree, or SYSCALLS one-byte reads and
# as many writes), timed in ns into $B/t.
workload() {
    case $w in
    syscalls) $G timed dd if=/dev/zero of=/dev/null bs=1 count="$SYSCALLS" 2>$B/t ;;
    *) $G timed chown -R 1000:1000 $D/m/tree 2>$B/t ;;
    esac
}

# traced_workload PATTERN FILE: the tracer started at $t0 as $TP prints PATTERN into FILE
# once attached. Runs the workload under it, records its BPF stats and peak RSS, stops it
# with SIGINT. Sets ready, rss and, in BPF-time rounds, bpf_ns.
traced_workload() {
    t1=$($G wait-for "$1" "$2") || return 1
    ready=$((t1 - t0))
    [ "$mode" = paused ] && kill -STOP $TP
    workload
    [ "$mode" = paused ] && kill -CONT $TP
    bpf_ns=
    if [ $STATS = 1 ]; then
        $G bpf-stats >$B/stats
        echo "@@STATS $n $(tr '\n' ';' <$B/stats)"
        # Only this tracer's programs are loaded during the round.
        bpf_ns=$(awk '{ s += $2 } END { print s + 0 }' $B/stats)
    fi
    rss=$(field VmHWM /proc/$TP/status)
    kill -INT $TP
    wait $TP
}

# round MODE N WORKLOAD LOWER
round() {
    mode=$1
    n=$2
    w=$3
    D=$B/r$n
    mkdir -p $D/u $D/w $D/m
    mount -t overlay overlay -o lowerdir=$4,upperdir=$D/u,workdir=$D/w $D/m
    extra=""
    case $mode in
    none)
        workload
        ;;
    fentry | kprobe | paused | json | csv | events | metrics | timeline)
        # Emptied here, not by the tracer's redirection, which happens after the fork:
        # wait-for must not find the previous round's line.
        : >$B/err
        # Stopped, the tracer leaves its records in the ring (4 MiB holds `tiny`'s) until
        # it resumes; the report's lost count says if any did not fit.
        # Every output mode on fentry; its records into a file.
        probes=fentry
        out=
        case $mode in
        kprobe) probes=kprobe ;;
        json | csv) out="-o $mode" ;;
        events) out=--events ;;
        metrics) out="--metrics 127.0.0.1:29435" ;;
        timeline) out="--timeline $B/timeline.json" ;;
        esac
        t0=$($G now)
        # shellcheck disable=SC2086 # out is empty or options and their values
        COPYUP_TRACE_LOG=info "$T" --probes $probes $out --report $B/report.json >$B/out 2>$B/err &
        TP=$!
        traced_workload Tracing $B/err
        attach=$(field 'attached in' $B/err)
        facts=$(field 'kernel facts' $B/err)
        extra="${bpf_ns:+bpf_ns=$bpf_ns }rss_kb=$rss attach_us=$attach facts_us=$facts ready_ns=$ready"
        echo "@@REPORT $n $(tr -d '\n' <$B/report.json)"
        ;;
    bpftrace)
        : >$B/bt.out
        t0=$($G now)
        bpftrace -B none -e "$BT" >$B/bt.out 2>$B/bt.err &
        TP=$!
        traced_workload @ready $B/bt.out
        extra="${bpf_ns:+bpf_ns=$bpf_ns }rss_kb=$rss ready_ns=$ready events=$(grep -c '^[0-9]' $B/bt.out)"
        ;;
    tracefs)
        echo 'p:cub/one ovl_copy_up_one' >>$TR/kprobe_events
        echo 'p:cub/file ovl_copy_up_file len=$arg4:u64' >>$TR/kprobe_events
        echo >$TR/trace
        echo 1 >$TR/events/cub/enable
        workload
        echo 0 >$TR/events/cub/enable
        extra="copy_ups=$(grep -c ' one:' $TR/trace)"
        echo '-:cub/one' >>$TR/kprobe_events
        echo '-:cub/file' >>$TR/kprobe_events
        echo >$TR/trace
        ;;
    esac
    echo "@@ROUND $mode $n $w elapsed_ns=$(field elapsed_ns $B/t) upper=$(find $D/u | wc -l) stats=$STATS $extra"
    umount $D/m
    rm -rf $D $B/timeline.json
}

# rounds [MODE...]: ROUNDS rounds of every workload in each mode of MODES (or of those
# named), alternating.
rounds() {
    r=0
    while [ $r -lt $ROUNDS ]; do
        for w in image tiny syscalls; do
            for mode in $MODES; do
                [ $# -gt 0 ] && ! echo " $* " | grep -q " $mode " && continue
                [ $mode = bpftrace ] && [ ! -x /usr/bin/bpftrace ] && continue
                n=$((n + 1))
                round $mode $n $w $B/$w
            done
        done
        r=$((r + 1))
    done
}

# A warm-up of each workload, not reported: the first copy-ups of a boot pay for slab
# and page-cache growth that later rounds do not.
for w in image tiny syscalls; do round none 0 $w $B/$w >/dev/null; done

n=0
rounds
# BPF time: the BPF tracers' rounds again with kernel.bpf_stats_enabled on.
echo 1 >/proc/sys/kernel/bpf_stats_enabled
STATS=1
rounds fentry kprobe bpftrace
echo 0 >/proc/sys/kernel/bpf_stats_enabled
STATS=0

[ "$BURST" -gt 0 ] || exit 0

# Burst: BURST empty-file copy-ups, default ring size, in each copyup-trace mode. On a
# tmpfs without an inode limit, so that twice BURST inodes fit in the guest's memory.
rm -rf $B/image $B/tiny $B/syscalls
mkdir -p $B/burst
mount -t tmpfs -o nr_inodes=0 tmpfs $B/burst
$G mkfiles $B/burst/tree/f $BURST 0
for mode in $MODES; do
    case $mode in fentry | kprobe) ;; *) continue ;; esac
    n=$((n + 1))
    echo "@@BURST $n"
    round $mode $n burst $B/burst
done
