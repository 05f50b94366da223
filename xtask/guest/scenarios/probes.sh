# Scenarios of the family `probes` (checked in xtask/src/scenarios/probes.rs): the key
# scenarios of copyup, triggers, faults, nested and layers again (from shared.sh), with
# each function forced onto fentry/fexit and then onto kprobes. Same paths, artifacts
# named MODE.NAME.

for mode in fentry kprobe; do
    PFX=$mode.
    PROBES="--probes $mode"
    sc_single
    sc_tree
    sc_trig
    sc_thr
    sc_nest
    sc_teardown
done
PFX=
PROBES=

# --- COPYUP_TRACE_LOG=debug names each function's mechanism, and why not fentry -------
newovl dbg
echo x >$D/lower/f
mountovl
COPYUP_TRACE_LOG=debug "$T" -o json -- chown 1000 $D/merged/f >$OUT/dbg.out 2>$OUT/dbg.err
emit dbg.err $OUT/dbg.err
