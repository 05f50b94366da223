# Scenarios of the family `triggers` (checked in xtask/src/scenarios/triggers.rs): every
# operation that copies up, named.

# --- every trigger, one traced shell doing one operation per object (shared.sh) ----
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
