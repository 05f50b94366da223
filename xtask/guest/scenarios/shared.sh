# Scenarios run by more than one family: by their own (copyup, triggers, faults,
# nested, layers) and again by `probes`, under each probe mechanism. Defined here, ahead of every
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

# --- teardown while tracing: each layer a mount of its own, and several lowers inside one
# mount; copy-ups from every layer, then the overlays and every layer mount unmounted
# while the tool still runs (PFX, PROBES as in probes.sh) --------------------------------
sc_teardown() {
D=/tmp/ovl-teardown
for m in merged merged2 low mid stack up; do
    if grep -q " $D/$m " /proc/mounts; then umount $D/$m; fi
done
rm -rf $D
mkdir -p $D/low $D/mid $D/stack $D/up $D/merged $D/merged2
for m in low mid stack up; do mount -t tmpfs tmpfs $D/$m; done
mkdir -p $D/low/d $D/stack/a $D/stack/b $D/stack/c $D/up/u $D/up/w $D/up/u2 $D/up/w2
mkf $D/mid/m 2000
mkf $D/low/l 1000
mkf $D/low/d/deep 3000
mkf $D/stack/a/fa 100
mkf $D/stack/b/fb 200
mkf $D/stack/c/fc 300
mount -t overlay overlay -o lowerdir=$D/mid:$D/low,upperdir=$D/up/u,workdir=$D/up/w $D/merged
mount -t overlay overlay -o lowerdir=$D/stack/a:$D/stack/b:$D/stack/c,upperdir=$D/up/u2,workdir=$D/up/w2 $D/merged2
N=${PFX}teardown
# shellcheck disable=SC2086 # PROBES is empty or one option and its value
"$T" $PROBES -o json >$OUT/$N.out 2>$OUT/$N.err &
TP=$!
# Until it has attached, or has refused to start (--probes fentry on an old kernel).
while ! grep -q Tracing $OUT/$N.err && kill -0 $TP 2>/dev/null; do sleep 0.1; done
chown 1000 $D/merged/m $D/merged/l $D/merged/d/deep $D/merged2/fa $D/merged2/fb $D/merged2/fc
# The tool has seen every copy-up (and named its layer) before anything is unmounted.
i=0
while [ "$(grep -c '"copy_up"' $OUT/$N.out)" -lt 7 ] && [ $i -lt 100 ] && kill -0 $TP 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
: >$OUT/$N.umounts
for m in merged merged2 mid low stack up; do
    umount $D/$m 2>>$OUT/$N.umount_err
    echo "$m $?" >>$OUT/$N.umounts
done
grep -c " $D/" /proc/mounts >$OUT/$N.left
kill -INT $TP 2>/dev/null
wait $TP
echo $? >$OUT/$N.rc
for f in out err rc umounts umount_err left; do
    emit $N.$f $OUT/$N.$f
done
}
