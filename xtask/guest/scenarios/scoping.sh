# Scenarios of the family `scoping` (checked in xtask/src/scenarios/scoping.rs): which
# tasks' copy-ups are reported.

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
$G bpf-objects >$OUT/pid.progs_during
touch /tmp/go
wait $P $Q
kill -INT $TP
wait $TP
echo $? >$OUT/pid.rc
grep -c ovl_ /sys/kernel/debug/kprobes/list >$OUT/pid.kprobes_after
emit pid.kprobes_after $OUT/pid.kprobes_after
$G bpf-objects settled >$OUT/pid.progs_after
emit pid.progs_during $OUT/pid.progs_during
emit pid.progs_after $OUT/pid.progs_after
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

# --- containers: a runtime that never answers holds up nothing ------------------------
# containerd's socket takes connections and never answers. Three containerd containers
# (by their cgroups) each chown -R 1000 files at once, through a 256 KiB ring (about a
# third of their records): draining must not wait for containerd (2 s a question, one
# after the other), so no copy-up is lost, and each is reported with its container
# marked unresolved.
newovl slowrt
for n in 1 2 3; do
    $G mkfiles $D/lower/c$n 1000 0
done
mountovl
mkdir -p /run/containerd
$G silent-socket /run/containerd/containerd.sock &
SP=$!
rm -f /tmp/go
PIDS=
for n in 1 2 3; do
    CG=/sys/fs/cgroup/system.slice/cri-containerd-$(printf '%064d' $n).scope
    mkdir -p $CG
    sh -c "echo \$\$ > $CG/cgroup.procs; while [ ! -e /tmp/go ]; do sleep 0.1; done; chown -R 1000 $D/merged/c$n" &
    PIDS="$PIDS $!"
done
"$T" -o json --ring-size 256K >$OUT/slowrt.out 2>$OUT/slowrt.err &
TP=$!
wait_ready $OUT/slowrt.err
touch /tmp/go
# shellcheck disable=SC2086 # PIDS is a list
wait $PIDS
kill -INT $TP
wait $TP
echo $? >$OUT/slowrt.rc
kill $SP
rm -f /run/containerd/containerd.sock
emit slowrt.out $OUT/slowrt.out
emit slowrt.err $OUT/slowrt.err
emit slowrt.rc $OUT/slowrt.rc
