# Scenarios of the family `nested` (checked in xtask/src/scenarios/nested.rs): overlays
# whose lower layer is another overlay exported with nfs_export=on. Copying up a
# directory of the outer overlay encodes its lower's file handle, and the lower overlay
# copies that directory up first when its parent is an unindexed upper directory: a
# copy-up nested in another. Each overlay's layers get their own tmpfs: on 5.10 the
# nested copy-up deadlocks when the upper layers share a superblock (the outer copy-up
# holds its rename lock).

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
sc_nest
