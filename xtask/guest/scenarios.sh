# Guest-side half of the kernel test matrix. Runs under busybox sh inside a Debian
# kernel booted by `cargo xtask test`. Each scenario builds its own overlay, runs
# copyup-trace, and saves raw artifacts; the host side (xtask/src/scenarios.rs) parses
# them and asserts exact values. Nothing here decides pass or fail.

T=/bin/copyup-trace
OUT=/tmp/out
mkdir -p $OUT

# emit NAME FILE: hand one artifact to the host.
emit() {
    echo "@@FILE $1"
    cat "$2" 2>/dev/null
    echo
    echo "@@EOF"
}

# newovl NAME: fresh lower/upper/work dirs; the caller fills lower, then mountovl.
newovl() {
    D=/tmp/ovl-$1
    mkdir -p $D/lower $D/upper $D/work $D/merged
}
mountovl() {
    mount -t overlay overlay -o lowerdir=$D/lower,upperdir=$D/upper,workdir=$D/work $D/merged
}

# run NAME ARGS...: run copyup-trace, keeping stdout, stderr and exit status.
run() {
    name=$1
    shift
    "$T" "$@" >$OUT/$name.out 2>$OUT/$name.err
    echo $? >$OUT/$name.rc
    emit $name.out $OUT/$name.out
    emit $name.err $OUT/$name.err
    emit $name.rc $OUT/$name.rc
}

# upper NAME: what actually landed in the upper layer (an oracle independent of probes).
upper() {
    (cd $D/upper && find . -mindepth 1 | sort) >$OUT/$1.upper
    emit $1.upper $OUT/$1.upper
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

echo "kernel $(uname -r)" >$OUT/uname
emit uname $OUT/uname

# --- errors: overlay not loaded, bad command ----------------------------------------
rmmod overlay && {
    run no_overlay -o json -- true
    insmod /lib/overlay.ko
}
run not_found -o json -- /no/such/command
run exit_status -o json -- sh -c 'exit 3'
run bad_flag --min-size lots

# --- one 8 MiB file, then the same file again ----------------------------------------
newovl single
dd if=/dev/zero of=$D/lower/big bs=1M count=8 2>/dev/null
mountovl
run single -o json -- chown 1000:1000 $D/merged/big
upper single
run again -o json -- chown 1000:1000 $D/merged/big

# --- chown -R over a tree with an oracle of tracefs kprobe events ---------------------
newovl tree
mkdir -p $D/lower/tree/sub/deep
dd if=/dev/zero of=$D/lower/tree/a.bin bs=4096 count=1 2>/dev/null
: >$D/lower/tree/empty
dd if=/dev/zero of=$D/lower/tree/sub/b.bin bs=1 count=123457 2>/dev/null
dd if=/dev/zero of=$D/lower/tree/sub/deep/c.bin bs=1M count=1 2>/dev/null
ln -s a.bin $D/lower/tree/link
mountovl
TR=/sys/kernel/tracing
echo 'p:cuoracle/one ovl_copy_up_one' >>$TR/kprobe_events
echo 'p:cuoracle/file ovl_copy_up_file len=$arg4:u64' >>$TR/kprobe_events
echo >$TR/trace
echo 1 >$TR/events/cuoracle/enable
run tree -o json -- chown -hR 1000:1000 $D/merged/tree
echo 0 >$TR/events/cuoracle/enable
grep -E 'cuoracle/|one:|file:' $TR/trace | grep -v '^#' >$OUT/tree.oracle
emit tree.oracle $OUT/tree.oracle
echo '-:cuoracle/one' >>$TR/kprobe_events
echo '-:cuoracle/file' >>$TR/kprobe_events
upper tree

# --- ancestors of a deep file come first ---------------------------------------------
newovl deep
mkdir -p $D/lower/a/b/c
dd if=/dev/zero of=$D/lower/a/b/c/file.txt bs=1000 count=5 2>/dev/null
mountovl
run deep -o json -- chown 1000:1000 $D/merged/a/b/c/file.txt

# --- -- COMMAND traces the command's tree only ---------------------------------------
newovl scope
for f in x1 x2 y1 y2; do echo $f >$D/lower/$f; done
mountovl
rm -f /tmp/go /tmp/other-done
# An unrelated process that copies up y1, y2 while the traced command runs.
sh -c "while [ ! -e /tmp/go ]; do sleep 0.1; done; chown 1000 $D/merged/y1 $D/merged/y2; touch /tmp/other-done" &
OTHER=$!
run scope -o json -- sh -c "touch /tmp/go; chown 1000 $D/merged/x1; sh -c 'chown 1000 $D/merged/x2'; while [ ! -e /tmp/other-done ]; do sleep 0.1; done"
# If the tracer failed to start, the command never ran: release the other process anyway.
touch /tmp/go
wait $OTHER
upper scope

# --- --pid traces one process only; SIGINT still prints the report -------------------
newovl pid
for f in p1 p2 q1; do echo $f >$D/lower/$f; done
mountovl
rm -f /tmp/go
sh -c "while [ ! -e /tmp/go ]; do sleep 0.1; done; exec chown 1000 $D/merged/p1 $D/merged/p2" &
P=$!
sh -c "while [ ! -e /tmp/go ]; do sleep 0.1; done; exec chown 1000 $D/merged/q1" &
Q=$!
echo $P >$OUT/pid.pid
"$T" -o json -p $P >$OUT/pid.out 2>$OUT/pid.err &
TP=$!
wait_ready $OUT/pid.err
touch /tmp/go
wait $P $Q
kill -INT $TP
wait $TP
echo $? >$OUT/pid.rc
grep -c ovl_ /sys/kernel/debug/kprobes/list >$OUT/pid.kprobes_after
emit pid.kprobes_after $OUT/pid.kprobes_after
emit pid.pid $OUT/pid.pid
emit pid.out $OUT/pid.out
emit pid.err $OUT/pid.err
emit pid.rc $OUT/pid.rc
upper pid

# --- --comm keeps one command name -------------------------------------------------
newovl comm
echo c1 >$D/lower/c1
echo c2 >$D/lower/c2
mountovl
run comm -o json -c chown -- sh -c "touch $D/merged/c2; chown 1000 $D/merged/c1"
upper comm

# --- human tables ----------------------------------------------------------------------
newovl table
mkdir -p $D/lower/etc
dd if=/dev/zero of=$D/lower/etc/big.conf bs=1024 count=300 2>/dev/null
mountovl
run table -- chown -R 0:0 $D/merged/etc

# --- every trigger, one traced shell doing one operation per object -----------------
G=/bin/guest-ops
newovl trig
L=$D/lower
for f in chown fchown chmod truncate otrunc owrite utimes setx rmx; do
    dd if=/dev/zero of=$L/$f bs=1000 count=3 2>/dev/null
done
ln -s chown $L/lnk
for d in dcreate dmkdir dunlink drename dlink drmdir dsymlink dmknod; do mkdir $L/$d; done
echo data >$L/dunlink/f
dd if=/dev/zero of=$L/drename/a bs=1000 count=2 2>/dev/null
dd if=/dev/zero of=$L/dlink/a bs=1000 count=4 2>/dev/null
mkdir $L/drmdir/empty
mountovl
# trusted.* xattrs work on tmpfs for root; set one in the lower layer to remove later.
$G setxattr $L/rmx trusted.test v1
M=$D/merged
run trig -o json -- sh -c "
chown 1000 $M/chown
chown -h 1000 $M/lnk
$G fchown $M/fchown
chmod 600 $M/chmod
$G truncate $M/truncate 100
: > $M/otrunc
$G open-write $M/owrite
touch $M/utimes
$G setxattr $M/setx trusted.test v2
$G removexattr $M/rmx trusted.test
touch $M/dcreate/new
mkdir $M/dmkdir/sub
rm $M/dunlink/f
mv $M/drename/a $M/drename/b
ln $M/dlink/a $M/dlink/b
rmdir $M/drmdir/empty
ln -s target $M/dsymlink/l
mkfifo $M/dmknod/p
"

# --- metacopy=on: chown copies metadata only, the first write copies the data -------
newovl meta
dd if=/dev/zero of=$D/lower/m bs=1000 count=5 2>/dev/null
mount -t overlay overlay -o lowerdir=$D/lower,upperdir=$D/upper,workdir=$D/work,metacopy=on,redirect_dir=on $D/merged
run meta -o json -- sh -c "chown 1000 $D/merged/m; $G open-write $D/merged/m"

# --- containers: cgroup attribution, --cgroup keeps only that cgroup -----------------
newovl cg
echo a >$D/lower/in
echo b >$D/lower/out
mountovl
CID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
CG=/sys/fs/cgroup/system.slice/docker-$CID.scope
mkdir -p $CG
rm -f /tmp/go
sh -c "echo \$\$ > $CG/cgroup.procs; while [ ! -e /tmp/go ]; do sleep 0.1; done; chown 1000 $D/merged/in" &
IN=$!
sh -c "while [ ! -e /tmp/go ]; do sleep 0.1; done; chown 1000 $D/merged/out" &
OUTP=$!
"$T" -o json --cgroup /system.slice/docker-$CID.scope >$OUT/cg.out 2>$OUT/cg.err &
TP=$!
wait_ready $OUT/cg.err
touch /tmp/go
wait $IN $OUTP
kill -INT $TP
wait $TP
echo $? >$OUT/cg.rc
emit cg.out $OUT/cg.out
emit cg.err $OUT/cg.err
emit cg.rc $OUT/cg.rc
upper cg

# --- live views: --interval tables, --events lines, --hist, names with escapes -------
newovl live
for i in 1 2 3; do echo $i >$D/lower/f$i; done
touch "$D/lower/$(printf 'esc\033[31mred\nline')" "$D/lower/$(printf 'jsn\033[31mred\nline')"
mountovl
run live --events --hist -i 1 --by trigger --by container -- sh -c "chown 1000 $D/merged/f1; sleep 1.2; chown 1000 $D/merged/f2; sleep 1.2; chown 1000 $D/merged/f3 $D/merged/esc*"
run livejson -o json -- sh -c "chown 2000 $D/merged/jsn*"

# --- --stacks / --flamegraph: folded stacks weighted by copy-up time ------------------
newovl stk
dd if=/dev/zero of=$D/lower/s1 bs=1000 count=7 2>/dev/null
echo two >$D/lower/s2
mountovl
run stk -o json --stacks $OUT/stk.folded --flamegraph $OUT/stk.svg -- chown 1000 $D/merged/s1 $D/merged/s2
emit stk.folded $OUT/stk.folded
head -c 300 $OUT/stk.svg >$OUT/stk.svghead
grep -c ovl_copy_up_one $OUT/stk.svg >$OUT/stk.svgcount
emit stk.svghead $OUT/stk.svghead
emit stk.svgcount $OUT/stk.svgcount

# --- faults: SIGKILL mid-workload; many threads copying up at once -------------------
KL=/sys/kernel/debug/kprobes/list
newovl kill
mkdir -p $D/lower/many
$G mkfiles $D/lower/many 1000 16384
mountovl
"$T" -o json >$OUT/kill.out 2>$OUT/kill.err &
TP=$!
wait_ready $OUT/kill.err
grep -c ovl_ $KL >$OUT/kill.kprobes_during
$G bpf-progs >$OUT/kill.progs_during
chown -R 1000:1000 $D/merged/many &
W=$!
# Kill once copy-ups are under way, not after a fixed time: how fast the workload runs
# depends on the machine.
while [ "$(ls $D/upper/many 2>/dev/null | wc -l)" -lt 20 ]; do :; done
kill -9 $TP
wait $TP
echo $? >$OUT/kill.rc
wait $W
echo $? >$OUT/kill.workload_rc
sleep 0.5
grep -c ovl_ $KL >$OUT/kill.kprobes_after
$G bpf-progs >$OUT/kill.progs_after
ls $D/upper/many | wc -l >$OUT/kill.upper_count
for f in out rc workload_rc kprobes_during kprobes_after progs_during progs_after upper_count; do
    emit kill.$f $OUT/kill.$f
done

newovl thr
i=0
while [ $i -lt 16 ]; do
    echo $i >$D/lower/t$i
    i=$((i + 1))
done
mountovl
run thr -o json -- $G threads 16 $D/merged/t

exit 0
