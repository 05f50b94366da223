# Scenarios of the family `faults` (checked in xtask/src/scenarios/faults.rs): the tracer
# killed mid-workload, many threads at once.

# --- faults: SIGKILL mid-workload; many threads copying up at once -------------------
KL=/sys/kernel/debug/kprobes/list
newovl kill
mkdir -p $D/lower/many
$G mkfiles $D/lower/many 1000 16384
mountovl
# kprobes, whose removal the kill check counts (fentry programs are counted too).
"$T" --probes kprobe -o json >$OUT/kill.out 2>$OUT/kill.err &
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

sc_thr() {
newovl thr
i=0
while [ $i -lt 16 ]; do
    echo $i >$D/lower/t$i
    i=$((i + 1))
done
mountovl
run thr -o json -- $G threads 16 $D/merged/t
}
sc_thr

