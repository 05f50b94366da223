# Scenarios of the family `triggers` (checked in xtask/src/scenarios/triggers.rs): every
# operation that copies up, named.

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
sc_trig

# --- no-op copy-ups: a chown or chmod to the owner or mode a file already has ----------
# Files of the lower layer are root's, mode 644. Each call below copies its file up; the
# ones that ask for what the file has are marked no-op, exactly those.
newovl noop
L=$D/lower
i=1
for f in same other mode othermode fsame fother; do
    dd if=/dev/zero of=$L/$f bs=$((i * 1000)) count=1 2>/dev/null
    chmod 644 $L/$f
    i=$((i + 1))
done
ln -s same $L/lsame
mountovl
M=$D/merged
run noop -o json -- sh -c "
chown 0:0 $M/same
chown 1000:0 $M/other
chmod 644 $M/mode
chmod 600 $M/othermode
$G fchown $M/fsame 0 0
$G fchown $M/fother 0 1000
chown -h 0:0 $M/lsame
"
