# Scenarios of the family `nested` (checked in xtask/src/scenarios/nested.rs): overlays
# whose lower layer is another overlay exported with nfs_export=on. Copying up a
# directory of the outer overlay encodes its lower's file handle, and the lower overlay
# copies that directory up first when its parent is an unindexed upper directory: a
# copy-up nested in another. Each overlay's layers get their own tmpfs: on 5.10 the
# nested copy-up deadlocks when the upper layers share a superblock (the outer copy-up
# holds its rename lock).

# --- copy-ups nested in another's, by chown, open and chmod (shared.sh) ------------
sc_nest
