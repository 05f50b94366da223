# Scenarios of the family `check` (checked in xtask/src/scenarios/check.rs): the host
# check on a kernel that can be traced, and a reader that goes away mid-run.

# --- check: this kernel can be traced, and how ---------------------------------------
# With an overlay whose layers are on a tmpfs of their own: whether the kernel idmaps it.
mkdir -p /tmp/idm
mount -t tmpfs tmpfs /tmp/idm
mkdir -p /tmp/idm/l /tmp/idm/u /tmp/idm/w /tmp/idm/m
mount -t overlay overlay -o lowerdir=/tmp/idm/l,upperdir=/tmp/idm/u,workdir=/tmp/idm/w /tmp/idm/m
run check_json check -o json
run check_table check
umount /tmp/idm/m
umount /tmp/idm
grep -c " /tmp/idm" /proc/self/mountinfo >$OUT/check.idm_left
emit check.idm_left $OUT/check.idm_left
grep -c ovl_ /sys/kernel/debug/kprobes/list >$OUT/check.kprobes_after
emit check.kprobes_after $OUT/check.kprobes_after

# --- a closed pipe: `copyup-trace -o json | head -1` ends quietly, status 0 ----------
newovl pipe
mkdir -p $D/lower/p
$G mkfiles $D/lower/p 300 4096
mountovl
( "$T" -o json -- chown -R 1000:1000 $D/merged/p 2>$OUT/pipe.err; echo $? >$OUT/pipe.rc ) |
    head -1 >$OUT/pipe.out
sleep 0.5
grep -c ovl_ /sys/kernel/debug/kprobes/list >$OUT/pipe.kprobes_after
for f in out err rc kprobes_after; do
    emit pipe.$f $OUT/pipe.$f
done
