# `cargo xtask demo`: runs in the guest, output is shown to the user.
# An image-like lower layer: a small "app" with libraries, assets and a data file.
D=/tmp/demo
mkdir -p $D/lower/app/lib $D/lower/app/assets/img $D/lower/app/data $D/upper $D/work $D/merged
for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=$D/lower/app/lib/libmod$i.so bs=64k count=$i 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do dd if=/dev/zero of=$D/lower/app/assets/img/icon$i.png bs=1k count=$((i * 3)) 2>/dev/null; done
dd if=/dev/zero of=$D/lower/app/data/model.bin bs=1M count=24 2>/dev/null
: > $D/lower/app/data/.keep
ln -s lib/libmod1.so $D/lower/app/libmod.so
mount -t overlay overlay -o lowerdir=$D/lower,upperdir=$D/upper,workdir=$D/work $D/merged
echo "# copyup-trace -- chown -R 1000:1000 $D/merged/app"
copyup-trace -- chown -R 1000:1000 $D/merged/app
echo
echo "# the same chown again: everything is already in the upper layer"
copyup-trace -- chown -R 1000:1000 $D/merged/app
