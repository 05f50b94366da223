# Scenarios of the family `copyup` (checked in xtask/src/scenarios/copyup.rs): what is
# copied up, in which order, with how many bytes.

# --- one 8 MiB file, then the same file again (shared.sh) -------------------------
sc_single

# --- chown -R over a tree with an oracle of tracefs kprobe events (shared.sh) ------
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

