# Guest-side half of the kernel test matrix: this file's helpers, then the scenarios
# several families run (shared.sh), then one part per family of scenarios (errors.sh,
# copyup.sh, ...), concatenated by
# xtask/src/scenarios/mod.rs into the one script that runs under busybox sh inside a
# Debian kernel booted by `cargo xtask test`. Each scenario builds its own overlay, runs
# copyup-trace, and saves raw artifacts; the host side (xtask/src/scenarios/<family>.rs)
# parses them and asserts exact values. Nothing here decides pass or fail.

T=/bin/copyup-trace
G=/bin/guest-ops
TR=/sys/kernel/tracing
OUT=/tmp/out
mkdir -p $OUT

# emit NAME FILE: hand one artifact to the host.
emit() {
    echo "@@FILE $1"
    cat "$2" 2>/dev/null
    echo
    echo "@@EOF"
    touch $OUT/.progress
}

# stacks PID: each thread of a process: its state, wait channel and kernel stack.
stacks() {
    for t in /proc/$1/task/*; do
        echo "== $1/${t##*/} $(cut -d' ' -f2,3 $t/stat 2>/dev/null) wchan=$(cat $t/wchan 2>/dev/null)"
        cat $t/stack 2>/dev/null
    done
}

# A scenario that emits nothing for STALL_S seconds has most likely hung: what every
# process is doing and the kernel's last messages go to the console (not the results,
# which they would interleave with), between @@STALLED and @@STALLED-END, for the host
# to show when the boot runs out of time. Once per stall; nothing here fails a check.
STALL_S=240
touch $OUT/.progress
(
    said=0
    while sleep 20; do
        idle=$(($(date +%s) - $(stat -c %Y $OUT/.progress)))
        if [ $idle -lt $STALL_S ]; then
            said=0
        elif [ $said = 0 ]; then
            said=1
            {
                echo "@@STALLED no artifact for ${idle}s"
                ps -o pid,ppid,stat,args | grep -v ' \[.*\]$'
                # User processes only (kernel threads have no command line).
                for p in /proc/[0-9]*; do
                    [ "$(head -c 1 $p/cmdline 2>/dev/null | wc -c)" = 1 ] && stacks ${p#/proc/}
                done
                dmesg | tail -30
                echo "@@STALLED-END"
            } >/dev/console 2>&1
        fi
    done
) </dev/null >/dev/null 2>&1 &

# Whether this kernel takes fexit on ovl_copy_up_one with the helpers the tool needs
# (`ok` or `no: ...`): the host's expectation of --probes fentry.
$G fexit-probe >$OUT/fexit_probe 2>&1
emit fexit_probe $OUT/fexit_probe

# A scenario run again under another --probes mode (probes.sh): PFX prefixes its
# artifact names, PROBES is passed to copyup-trace.
PFX=
PROBES=

# fetch FILE URL [WGET OPTIONS...]: busybox wget, whose read timeout is otherwise 900 s,
# given 20 s: an endpoint that stops answering fails its checks instead of the whole
# boot. Bounded by `timeout`: busybox 1.35's own `wget -T` dies of a NULL write on every
# request.
fetch() {
    f=$1
    u=$2
    shift 2
    timeout 20 wget -q -O "$f" "$@" "$u"
}

# diag PID: what a process that did not end is doing: its threads (`stacks`) and the
# TCP sockets.
diag() {
    stacks $1
    netstat -tn 2>/dev/null
}

# stop_tool PID NAME: SIGTERM, then up to 30 s for it to end; its exit status is this
# function's. One still running is described in NAME.hung (which the caller emits; the
# host fails NAME's exit status on it) and killed, so that a hang fails its own checks,
# with what it was doing, instead of the whole boot.
stop_tool() {
    kill -TERM $1 2>/dev/null
    i=0
    while kill -0 $1 2>/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 $1 2>/dev/null; then
        echo "still running 30 s after SIGTERM" >>$OUT/$2.hung
        diag $1 >>$OUT/$2.hung
        kill -9 $1
    fi
    wait $1
}

# mkf FILE BYTES: a file of that many zero bytes.
mkf() {
    dd if=/dev/zero of="$1" bs="$2" count=1 2>/dev/null
}

# newovl NAME: fresh lower/upper/work dirs; the caller fills lower, then mountovl. A
# scenario run again gets the same paths, emptied.
newovl() {
    D=/tmp/ovl-$1
    if grep -q " $D/merged " /proc/mounts; then umount $D/merged; fi
    rm -rf $D
    mkdir -p $D/lower $D/upper $D/work $D/merged
}
mountovl() {
    mount -t overlay overlay -o lowerdir=$D/lower,upperdir=$D/upper,workdir=$D/work $D/merged
}

# run NAME ARGS...: run copyup-trace, keeping stdout, stderr and exit status.
run() {
    name=$PFX$1
    shift
    # shellcheck disable=SC2086 # PROBES is empty or one option and its value
    "$T" $PROBES "$@" >$OUT/$name.out 2>$OUT/$name.err
    echo $? >$OUT/$name.rc
    emit $name.out $OUT/$name.out
    emit $name.err $OUT/$name.err
    emit $name.rc $OUT/$name.rc
}

# upper NAME: what actually landed in the upper layer (an oracle independent of probes).
upper() {
    (cd $D/upper && find . -mindepth 1 | sort) >$OUT/$PFX$1.upper
    emit $PFX$1.upper $OUT/$PFX$1.upper
}

# wait_ready FILE: wait until a tracer running in the background has attached.
wait_ready() {
    i=0
    while ! grep -q Tracing "$1" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
        [ $i -gt 600 ] && return 1
    done
}

