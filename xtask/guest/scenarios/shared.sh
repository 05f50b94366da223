# Scenarios run by more than one family: by their own (copyup, triggers, faults,
# nested) and again by `probes`, under each probe mechanism. Defined here, ahead of every
# family, so that a family run alone (`--family probes`, or a line that leaves one out)
# finds them; each family calls them where its own scenarios run.

# --- one 8 MiB file, then the same file again ----------------------------------------
sc_single() {
newovl single
dd if=/dev/zero of=$D/lower/big bs=1M count=8 2>/dev/null
mountovl
run single -o json -- chown 1000:1000 $D/merged/big
upper single
run again -o json -- chown 1000:1000 $D/merged/big
}

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

# --- every trigger, one traced shell doing one operation per object -----------------
sc_trig() {
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
}

# --- 16 threads copying up at once, each its own file ------------------------------
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

# --- overlays stacked two deep (the family `nested` says why) ------------------------
# nestovl LEVELS: overlays stacked LEVELS deep under /tmp/nest; $NO is the outermost's
# mount point, over the level below's x. Level 1 holds x/d1/f1 (5000 bytes), x/d2/f
# (12288), x/d3/e/g (3000), x/d4/h (100); each level but the outermost keeps x as an
# unindexed upper directory. (Only two levels mount: an overlay exported with
# nfs_export=on refuses an overlay as its lower layer.)
nestovl() {
    N=/tmp/nest
    for m in $(grep " $N/" /proc/mounts | cut -d' ' -f2 | sort -r); do umount $m; done
    rm -rf $N
    mkdir -p $N
    lvl=1
    lower=
    while [ $lvl -le "$1" ]; do
        L=$N/l$lvl
        mkdir -p $L
        mount -t tmpfs tmpfs $L
        mkdir -p $L/upper $L/work $L/merged
        if [ $lvl = 1 ]; then
            mkdir -p $L/lower/x/d1 $L/lower/x/d2 $L/lower/x/d3/e $L/lower/x/d4
            head -c 5000 /dev/zero >$L/lower/x/d1/f1
            head -c 12288 /dev/zero >$L/lower/x/d2/f
            head -c 3000 /dev/zero >$L/lower/x/d3/e/g
            head -c 100 /dev/zero >$L/lower/x/d4/h
            lower=$L/lower
        fi
        if [ $lvl -lt "$1" ]; then
            mkdir $L/upper/x
            mount -t overlay overlay -o lowerdir=$lower,upperdir=$L/upper,workdir=$L/work,index=on,nfs_export=on $L/merged
            lower=$L/merged
        else
            mount -t overlay overlay -o lowerdir=$lower/x,upperdir=$L/upper,workdir=$L/work $L/merged
        fi
        lvl=$((lvl + 1))
    done
    NO=$L/merged
    D=$L
}

sc_nest() {
nestovl 2
run nest.chown -o json -- chown -R 1000 $NO/d1 $NO/d3
run nest.open -o json -- $G open-write $NO/d2/f
run nest.csv -o csv -- chmod 700 $NO/d4/h
upper nest
# The lower overlay's own upper layer: the directories it copied up.
(cd $N/l1/upper && find x | sort) >$OUT/${PFX}nest.inner
emit ${PFX}nest.inner $OUT/${PFX}nest.inner
}
