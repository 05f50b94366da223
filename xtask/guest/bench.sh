# Guest side of `cargo xtask bench`: the same chown -R workload untraced, under
# copyup-trace and under plain tracefs kprobe events, alternating in one boot. Prints
# one `@@ROUND` line per round and one `@@BURST` line; xtask/src/guestbench.rs reports.

T=/bin/copyup-trace
G=/bin/guest-ops
TR=/sys/kernel/tracing
B=/tmp/bench
L=$B/lower
ROUNDS=${ROUNDS:-3}
# MODES, the modes to alternate, comes from xtask (guestbench::Mode).
: "${MODES:?}"
BURST=${BURST:-1}

# 10,000 small files and a few large ones: an image layer's worth of chown -R.
$G mkfiles $L/tree/small 10000 4096
$G mkfiles $L/tree/large 3 4194304
echo 1 >/proc/sys/kernel/bpf_stats_enabled

# field NAME FILE: the number after NAME in FILE.
field() { sed -n "s/.*$1[^0-9]*\([0-9][0-9]*\).*/\1/p" "$2" | head -n 1; }

# The bpftrace equivalent of what copyup-trace reports per copy-up: pid, comm, bytes,
# latency and the chown's filename, printed as each copy-up completes.
BT='kprobe:do_fchownat { @fn[tid] = arg1; }
kretprobe:do_fchownat { delete(@fn[tid]); }
kprobe:ovl_copy_up_one { @start[tid] = nsecs; @bytes[tid] = 0; }
kprobe:ovl_copy_up_file { @bytes[tid] += arg3; }
kretprobe:ovl_copy_up_one /@start[tid]/ {
  printf("%d %s %d %d %s\n", pid, comm, @bytes[tid], nsecs - @start[tid], str(@fn[tid]));
  delete(@start[tid]); delete(@bytes[tid]);
}'

# uptime_ms: the guest clock in ms, to time start-up the same way for every tracer.
uptime_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

# wait_for PATTERN FILE
wait_for() {
    i=0
    while ! grep -q "$1" "$2" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
        [ $i -gt 4000 ] && return 1
    done
}

# traced_workload PATTERN FILE: the tracer started at $t0 as $TP prints PATTERN into FILE
# once attached. Runs the workload under it, records its BPF stats and peak RSS, stops it
# with SIGINT. Sets ready, rss and bpf_ns.
traced_workload() {
    wait_for "$1" "$2"
    ready=$(($(uptime_ms) - t0))
    $G timed chown -R 1000:1000 $D/m/tree 2>$B/t
    $G bpf-stats >$B/stats
    echo "@@STATS $n $(tr '\n' ';' <$B/stats)"
    rss=$(field VmHWM /proc/$TP/status)
    kill -INT $TP
    wait $TP
    # Only this tracer's programs are loaded during the round.
    bpf_ns=$(awk '{ s += $2 } END { print s + 0 }' $B/stats)
}

round() {
    mode=$1
    n=$2
    lower=$3
    D=$B/r$n
    mkdir -p $D/u $D/w $D/m
    mount -t overlay overlay -o lowerdir=$lower,upperdir=$D/u,workdir=$D/w $D/m
    extra=""
    case $mode in
    none)
        $G timed chown -R 1000:1000 $D/m/tree 2>$B/t
        ;;
    copyup-trace)
        t0=$(uptime_ms)
        COPYUP_TRACE_LOG=info "$T" --report $B/report.json >/dev/null 2>$B/err &
        TP=$!
        traced_workload Tracing $B/err
        attach=$(field 'attached in' $B/err)
        facts=$(field 'kernel facts' $B/err)
        extra="bpf_ns=$bpf_ns rss_kb=$rss attach_us=$attach facts_us=$facts ready_ms=$ready"
        echo "@@REPORT $n $(tr -d '\n' <$B/report.json)"
        ;;
    bpftrace)
        t0=$(uptime_ms)
        bpftrace -e "$BT" >$B/bt.out 2>$B/bt.err &
        TP=$!
        traced_workload Attaching $B/bt.out
        extra="bpf_ns=$bpf_ns rss_kb=$rss ready_ms=$ready events=$(grep -c '^[0-9]' $B/bt.out)"
        ;;
    tracefs)
        echo 'p:cub/one ovl_copy_up_one' >>$TR/kprobe_events
        echo 'p:cub/file ovl_copy_up_file len=$arg4:u64' >>$TR/kprobe_events
        echo >$TR/trace
        echo 1 >$TR/events/cub/enable
        $G timed chown -R 1000:1000 $D/m/tree 2>$B/t
        echo 0 >$TR/events/cub/enable
        extra="copy_ups=$(grep -c ' one:' $TR/trace)"
        echo '-:cub/one' >>$TR/kprobe_events
        echo '-:cub/file' >>$TR/kprobe_events
        echo >$TR/trace
        ;;
    esac
    echo "@@ROUND $mode $n elapsed_ns=$(field elapsed_ns $B/t) upper=$(find $D/u | wc -l) $extra"
    umount $D/m
    rm -rf $D
}

n=0
r=0
while [ $r -lt $ROUNDS ]; do
    for mode in $MODES; do
        [ $mode = bpftrace ] && [ ! -x /usr/bin/bpftrace ] && continue
        n=$((n + 1))
        round $mode $n $L
    done
    r=$((r + 1))
done

[ "$BURST" = 1 ] || exit 0

# Burst: 100,000 small-file copy-ups, default ring size. Empty files on a tmpfs without
# an inode limit, so that 200,000 inodes fit in the guest's memory.
rm -rf $L
mkdir -p $B/burst
mount -t tmpfs -o nr_inodes=0 tmpfs $B/burst
$G mkfiles $B/burst/tree/f 100000 0
n=$((n + 1))
echo "@@BURST $n"
round copyup-trace $n $B/burst
