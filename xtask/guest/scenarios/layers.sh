# Scenarios of the family `layers` (checked in xtask/src/scenarios/layers.rs): which
# lower layer each copy-up came from, and what metacopy=on would have saved.

# --- three lower layers, named as docker (through an l/ link), as a plain directory with
# a space (escaped in mountinfo) and as a containerd snapshot ----------------------------
sc_layers() {
D=/tmp/ovl-layers
if grep -q " $D/merged " /proc/mounts; then umount $D/merged; fi
rm -rf $D
ID0=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
L0=$D/docker/overlay2/$ID0/diff
L1="$D/plain dir"
L2=$D/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs
mkdir -p $L0 "$L1/dir" $L2/dir $D/docker/overlay2/l $D/upper $D/work $D/merged
ln -s ../$ID0/diff $D/docker/overlay2/l/SHORT0
mkf $L0/t0 1000
mkf $L0/shadow 500
mkf $L0/keep0 1500
mkf "$L1/m1" 2000
mkf "$L1/keep1" 6000
mkf $L2/b2 4000
mkf $L2/dir/deep 3000
mkf $L2/shadow 1000
mount -t overlay overlay -o "lowerdir=$D/docker/overlay2/l/SHORT0:$L1:$L2,upperdir=$D/upper,workdir=$D/work" $D/merged
grep " $D/merged " /proc/self/mountinfo >$OUT/layers.mountinfo
emit layers.mountinfo $OUT/layers.mountinfo
M=$D/merged
run layers -o json --report $OUT/layers.report -- chown 1000 $M/t0 $M/shadow $M/m1 $M/b2 $M/dir/deep
emit layers.report $OUT/layers.report
}
sc_layers

# --- the same metadata-only and data workload on a metacopy=off and a metacopy=on overlay,
# in one traced run ----------------------------------------------------------------------
sc_advice() {
for mode in off on; do
    D=/tmp/ovl-adv$mode
    if grep -q " $D/merged " /proc/mounts; then umount $D/merged; fi
    rm -rf $D
    mkdir -p $D/lower/d $D/upper $D/work $D/merged
    mkf $D/lower/c 3000
    mkf $D/lower/m 5000
    mkf $D/lower/u 7000
    mkf $D/lower/x 11000
    mkf $D/lower/r 13000
    mkf $D/lower/w 17000
    mkf $D/lower/t 19000
    $G setxattr $D/lower/r trusted.test v1
    if [ $mode = on ]; then extra=,metacopy=on,redirect_dir=on; else extra=,metacopy=off; fi
    mount -t overlay overlay -o lowerdir=$D/lower,upperdir=$D/upper,workdir=$D/work$extra $D/merged
done
W='chown 1000 $M/c; chmod 600 $M/m; touch $M/u; $G setxattr $M/x trusted.test v2; $G removexattr $M/r trusted.test; $G open-write $M/w; $G truncate $M/t 100; chown 1000 $M/d'
run advice --by layer --report $OUT/advice.report -- sh -c "G=$G; for M in /tmp/ovl-advoff/merged /tmp/ovl-advon/merged; do $W; done"
emit advice.report $OUT/advice.report
grep " /tmp/ovl-adv" /proc/self/mountinfo >$OUT/advice.mountinfo
emit advice.mountinfo $OUT/advice.mountinfo
cat /sys/module/overlay/parameters/metacopy /sys/module/overlay/parameters/redirect_dir /sys/module/overlay/parameters/redirect_always_follow /sys/module/overlay/parameters/index >$OUT/advice.params 2>&1
emit advice.params $OUT/advice.params
}
sc_advice

# --- chown -R over a tree: the advice points at idmapped mounts -------------------------
newovl chownr
mkdir $D/lower/tree
i=0
while [ $i -lt 20 ]; do
    mkf $D/lower/tree/f$i 100
    i=$((i + 1))
done
mountovl
run chownr -o json --report $OUT/chownr.report -- chown -R 1000:1000 $D/merged/tree
emit chownr.report $OUT/chownr.report


# --- teardown while tracing: every layer mount unmounted under the tool (shared.sh) ---
sc_teardown

# --- a renamed directory (redirect_dir): the kernel copies its content up from the lower
# layer under its old name ----------------------------------------------------------------
D=/tmp/ovl-redirect
if grep -q " $D/merged " /proc/mounts; then umount $D/merged; fi
rm -rf $D
mkdir -p $D/l0 $D/l1/old $D/upper $D/work $D/merged
mkf $D/l0/top 10
mkf $D/l1/old/f 4000
mount -t overlay overlay -o lowerdir=$D/l0:$D/l1,upperdir=$D/upper,workdir=$D/work,redirect_dir=on $D/merged
mv $D/merged/old $D/merged/new
run redirect -o json -- chown 1000 $D/merged/new/f
upper redirect

# --- metacopy: a metacopy file in one lower layer, its data in another (and, from 6.5, in
# a data-only layer): a data copy-up names both ---------------------------------------------
D=/tmp/ovl-mdata
for m in merged merged2 merged3; do
    if grep -q " $D/$m " /proc/mounts; then umount $D/$m; fi
done
rm -rf $D
mkdir -p $D/data $D/meta $D/w0 $D/u1 $D/w1 $D/u2 $D/w2 $D/merged $D/merged2 $D/merged3
mkf $D/data/big 5000
# A metadata-only copy-up leaves in `meta` a metacopy file whose data stays in `data`.
mount -t overlay overlay -o lowerdir=$D/data,upperdir=$D/meta,workdir=$D/w0,metacopy=on $D/merged
chown 1000 $D/merged/big
umount $D/merged
# A data-only lower layer is found through an absolute redirect (6.5+; older kernels
# refuse the `::` syntax); the same path, so the plain stack ignores it.
$G setxattr $D/meta/big trusted.overlay.redirect /big
mount -t overlay overlay -o lowerdir=$D/meta:$D/data,upperdir=$D/u1,workdir=$D/w1,metacopy=on $D/merged2
mount -t overlay overlay -o lowerdir=$D/meta::$D/data,upperdir=$D/u2,workdir=$D/w2,metacopy=on,redirect_dir=on $D/merged3 2>$OUT/mdata.mount3_err
echo $? >$OUT/mdata.mount3_rc
emit mdata.mount3_rc $OUT/mdata.mount3_rc
emit mdata.mount3_err $OUT/mdata.mount3_err
run mdata -o json --report $OUT/mdata.report -- sh -c "$G open-write $D/merged2/big; if grep -q ' $D/merged3 ' /proc/mounts; then $G open-write $D/merged3/big; fi"
emit mdata.report $OUT/mdata.report
