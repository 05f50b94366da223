# Guest-side half of the kernel test matrix: this file's helpers, then one part per
# family of scenarios (errors.sh, copyup.sh, ...), concatenated by
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
}

# Whether this kernel takes fexit on ovl_copy_up_one with the helpers the tool needs
# (`ok` or `no: ...`): the host's expectation of --probes fentry.
$G fexit-probe >$OUT/fexit_probe 2>&1
emit fexit_probe $OUT/fexit_probe

# A scenario run again under another --probes mode (probes.sh): PFX prefixes its
# artifact names, PROBES is passed to copyup-trace.
PFX=
PROBES=

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

