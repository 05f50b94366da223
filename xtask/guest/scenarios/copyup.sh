# Scenarios of the family `copyup` (checked in xtask/src/scenarios/copyup.rs): what is
# copied up, in which order, with how many bytes.

# --- one 8 MiB file, then the same file again ----------------------------------------
sc_single() {
newovl single
dd if=/dev/zero of=$D/lower/big bs=1M count=8 2>/dev/null
mountovl
run single -o json -- chown 1000:1000 $D/merged/big
upper single
run again -o json -- chown 1000:1000 $D/merged/big
}
sc_single

# --- chown -R over a tree with an oracle of tracefs kprobe events ---------------------
sc_tree() {
newovl tree
mkdir -p $D/lower/tree/sub/deep
dd if=/dev/zero of=$D/lower/tree/a.bin bs=4096 count=1 2>/dev/null
: >$D/lower/tree/empty
dd if=/dev/zero of=$D/lower/tree/sub/b.bin bs=1 count=123457 2>/dev/null
dd if=/dev/zero of=$D/lower/tree/sub/deep/c.bin bs=1M count=1 2>/dev/null
ln -s a.bin $D/lower/tree/link
mountovl
echo 'p:cuoracle/one ovl_copy_up_one' >>$TR/kprobe_events
# The data copy is ovl_copy_up_file where the kernel has it (5.11+), else
# ovl_copy_up_data(ofs, old, new, len) (5.10): the length is the 4th argument in both.
DATA_FN=ovl_copy_up_file
grep -qw ovl_copy_up_file /proc/kallsyms || DATA_FN=ovl_copy_up_data
echo "p:cuoracle/file $DATA_FN len=\$arg4:u64" >>$TR/kprobe_events
echo >$TR/trace
echo 1 >$TR/events/cuoracle/enable
run tree -o json -- chown -hR 1000:1000 $D/merged/tree
echo 0 >$TR/events/cuoracle/enable
grep -E 'cuoracle/|one:|file:' $TR/trace | grep -v '^#' >$OUT/${PFX}tree.oracle
emit ${PFX}tree.oracle $OUT/${PFX}tree.oracle
echo '-:cuoracle/one' >>$TR/kprobe_events
echo '-:cuoracle/file' >>$TR/kprobe_events
upper tree
}
sc_tree

# --- ancestors of a deep file come first ---------------------------------------------
newovl deep
mkdir -p $D/lower/a/b/c
dd if=/dev/zero of=$D/lower/a/b/c/file.txt bs=1000 count=5 2>/dev/null
mountovl
run deep -o json -- chown 1000:1000 $D/merged/a/b/c/file.txt

# --- metacopy=on: chown copies metadata only, the first write copies the data -------
newovl meta
dd if=/dev/zero of=$D/lower/m bs=1000 count=5 2>/dev/null
mount -t overlay overlay -o lowerdir=$D/lower,upperdir=$D/upper,workdir=$D/work,metacopy=on,redirect_dir=on $D/merged
run meta -o json -- sh -c "chown 1000 $D/merged/m; $G open-write $D/merged/m"

