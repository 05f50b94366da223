# Scenarios of the family `faults` (checked in xtask/src/scenarios/faults.rs): the tracer
# killed mid-workload, many threads at once.

# --- faults: SIGKILL mid-workload; many threads copying up at once -------------------
KL=/sys/kernel/debug/kprobes/list
# sc_kill: in both probe modes (PFX, PROBES as in probes.sh).
sc_kill() {
newovl kill
mkdir -p $D/lower/many
$G mkfiles $D/lower/many 1000 16384
mountovl
# shellcheck disable=SC2086 # PROBES is one option and its value
"$T" $PROBES -o json >$OUT/${PFX}kill.out 2>$OUT/${PFX}kill.err &
TP=$!
# Until it has attached, or has refused to start (--probes fentry on an old kernel).
while ! grep -q Tracing $OUT/${PFX}kill.err && kill -0 $TP 2>/dev/null; do sleep 0.1; done
grep -c ovl_ $KL >$OUT/${PFX}kill.kprobes_during
$G bpf-objects >$OUT/${PFX}kill.progs_during
chown -R 1000:1000 $D/merged/many &
W=$!
# Kill once copy-ups are under way, not after a fixed time: how fast the workload runs
# depends on the machine.
while [ "$(ls $D/upper/many 2>/dev/null | wc -l)" -lt 20 ]; do :; done
kill -9 $TP 2>/dev/null
wait $TP
echo $? >$OUT/${PFX}kill.rc
wait $W
echo $? >$OUT/${PFX}kill.workload_rc
sleep 0.5
grep -c ovl_ $KL >$OUT/${PFX}kill.kprobes_after
$G bpf-objects settled >$OUT/${PFX}kill.progs_after
ls $D/upper/many | wc -l >$OUT/${PFX}kill.upper_count
for f in out err rc workload_rc kprobes_during kprobes_after progs_during progs_after upper_count; do
    emit ${PFX}kill.$f $OUT/${PFX}kill.$f
done
}
# kprobes, whose removal the check counts, then fentry/fexit.
PROBES="--probes kprobe"
sc_kill
PFX=fentry.
PROBES="--probes fentry"
sc_kill
PFX=
PROBES=

# --- faults: SIGINT while the probes are still loading -------------------------------
# A background job of a non-interactive shell starts with SIGINT ignored until the tool
# catches it. Sent as soon as it is caught (SigCgt bit 1) and before the tool has
# attached, the signal must end the run with its report, not be lost. The shell's child
# catches SIGINT itself until it execs the tool: its mask counts only once the process
# is the tool (exe read first, so the mask read after is the tool's).
newovl early
echo x >$D/lower/f
mountovl
"$T" -o json >$OUT/early.out 2>$OUT/early.err &
TP=$!
while kill -0 $TP 2>/dev/null; do
    [ "$(readlink /proc/$TP/exe)" = "$T" ] || continue
    m=$(awk '/^SigCgt/ {print $2}' /proc/$TP/status 2>/dev/null)
    [ -n "$m" ] && [ $((0x$m & 2)) -ne 0 ] && break
done
grep -c Tracing $OUT/early.err >$OUT/early.attached_before
kill -INT $TP
i=0
while kill -0 $TP 2>/dev/null && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
if kill -0 $TP 2>/dev/null; then
    echo hung >$OUT/early.rc
    kill -9 $TP
    wait $TP
else
    wait $TP
    echo $? >$OUT/early.rc
fi
grep -c ovl_ $KL >$OUT/early.kprobes_after
$G bpf-objects settled >$OUT/early.progs_after
for f in out err rc attached_before kprobes_after progs_after; do
    emit early.$f $OUT/early.$f
done

# --- 16 threads copying up at once (shared.sh) -------------------------------------
sc_thr


# --- faults: 64 threads copying up at once (2 vCPUs), per trigger, both mechanisms ------
# More threads than kretprobe instances (maxactive, max(10, 2 x CPUs)): some returns may
# be skipped, and each must be counted. fexit has no instance limit, but a fentry/fexit
# program preempted on a CPU makes the kernel skip the same program for the next task
# there: each such skip must show in the summary's skipped_runs.
for mode in kprobe fentry; do
    for op in chown open-write chmod; do
        newovl t64
        i=0
        while [ $i -lt 64 ]; do
            head -c 262144 /dev/zero >$D/lower/t$i
            i=$((i + 1))
        done
        mountovl
        run t64.$mode.$op --probes $mode -o json -- $G threads 64 $D/merged/t $op
        ls $D/upper | wc -l >$OUT/t64.$mode.$op.upper_count
        emit t64.$mode.$op.upper_count $OUT/t64.$mode.$op.upper_count
    done
done

# --- faults: more threads copying up at once than the scratch map has entries (1024) ---
# Each record is built in an entry keyed by its own thread, held only while it is built:
# none can be handed to another thread (as an LRU map hands its oldest entry to a new
# key when full) and none is left after, counted while the tracer still runs. File f<i>
# has 1000 + i bytes.
newovl many
$G mkfiles $D/lower 1100 1000 1
mountovl
"$T" -o json >$OUT/many.out 2>$OUT/many.err &
TP=$!
wait_ready $OUT/many.err
$G threads 1100 $D/merged/f 2>$OUT/many.threads
$G bpf-map-count EVENT_SCRATCH >$OUT/many.scratch_left 2>&1
kill -INT $TP
wait $TP
echo $? >$OUT/many.rc
for f in out err rc threads scratch_left; do
    emit many.$f $OUT/many.$f
done

# --- faults: the overlay module removed while tracing ---------------------------------
# fentry/fexit links pin the module, so rmmod fails while tracing; kprobes go with it,
# and the tracer says so. Nothing of ours stays either way. Overlays are unmounted first
# so that only the tracer can hold the module; it is loaded again after.
for mode in fentry kprobe; do
    for m in $(grep " overlay " /proc/mounts | cut -d' ' -f2 | sort -r); do umount $m; done
    "$T" --probes $mode -o json >$OUT/rmmod.$mode.out 2>$OUT/rmmod.$mode.err &
    TP=$!
    while ! grep -q Tracing $OUT/rmmod.$mode.err && kill -0 $TP 2>/dev/null; do sleep 0.1; done
    $G bpf-objects >$OUT/rmmod.$mode.progs_during
    rmmod overlay 2>/dev/null
    echo $? >$OUT/rmmod.$mode.rmmod_rc
    # The tracer looks once a second.
    sleep 2
    kill -INT $TP 2>/dev/null
    wait $TP
    echo $? >$OUT/rmmod.$mode.rc
    grep -c ovl_ $KL >$OUT/rmmod.$mode.kprobes_after
    $G bpf-objects settled >$OUT/rmmod.$mode.progs_after
    grep -c "^overlay " /proc/modules >$OUT/rmmod.$mode.loaded_after
    grep -q "^overlay " /proc/modules || insmod /lib/overlay.ko
    for f in out err rc rmmod_rc kprobes_after progs_during progs_after loaded_after; do
        emit rmmod.$mode.$f $OUT/rmmod.$mode.$f
    done
done

# --- skipped returns leave no stale blame: process SP's syscall and operation returns go
# unseen (COPYUP_TRACE_SKIP_RETURNS_OF, as when the kernel skips those runs). One thread
# chowns `a`, then opens `b` for writing; after it has ended, a new process with the
# same pid opens `c` (PFX, PROBES as in probes.sh) ------------------------------------------
sc_stale() {
newovl stale
mkf $D/lower/a 1000
mkf $D/lower/b 2000
mkf $D/lower/c 3000
mountovl
N=${PFX}stale
# A pid no process holds, well ahead of the next one the kernel hands out (which the
# tracer started below takes): a long run may have wrapped pids past $1.
SP=$(( ($(cat /proc/sys/kernel/ns_last_pid) + $1 - 29000) % 30000 + 1000 ))
while [ -e /proc/$SP ]; do SP=$((SP + 1)); done
# shellcheck disable=SC2086 # PROBES is empty or one option and its value
COPYUP_TRACE_SKIP_RETURNS_OF=$SP "$T" $PROBES -o json >$OUT/$N.out 2>$OUT/$N.err &
TP=$!
while ! grep -q Tracing $OUT/$N.err && kill -0 $TP 2>/dev/null; do sleep 0.1; done
$G as-pid $SP chown-open $D/merged/a $D/merged/b
# The thread has ended: nothing of it may be left for the next one with its tid.
$G bpf-map-count SYSCALLS >$OUT/$N.syscalls_left 2>&1
$G bpf-map-count OPS >$OUT/$N.ops_left 2>&1
$G bpf-map-count SCRATCH_KEPT >$OUT/$N.kept_left 2>&1
$G bpf-map-count EVENT_SCRATCH >$OUT/$N.scratch_left 2>&1
$G as-pid $SP open-write $D/merged/c
kill -INT $TP 2>/dev/null
wait $TP
echo $? >$OUT/$N.rc
for f in out err rc syscalls_left ops_left kept_left scratch_left; do
    emit $N.$f $OUT/$N.$f
done
}
sc_stale 30001
PFX=kprobe.
PROBES="--probes kprobe"
sc_stale 30002
PFX=
PROBES=
