# Scenarios of the family `output` (checked in xtask/src/scenarios/output.rs): tables,
# live views, escaping, stacks.

# --- human tables ----------------------------------------------------------------------
newovl table
mkdir -p $D/lower/etc
dd if=/dev/zero of=$D/lower/etc/big.conf bs=1024 count=300 2>/dev/null
mountovl
run table -- chown -R 0:0 $D/merged/etc

# --- live views: --interval tables, --events lines, --hist, names with escapes -------
newovl live
for i in 1 2 3; do echo $i >$D/lower/f$i; done
touch "$D/lower/$(printf 'esc\033[31mred\nline')" "$D/lower/$(printf 'jsn\033[31mred\nline')"
mountovl
run live --events --hist -i 1 --by trigger --by container -- sh -c "chown 1000 $D/merged/f1; sleep 1.2; chown 1000 $D/merged/f2; sleep 1.2; chown 1000 $D/merged/f3 $D/merged/esc*"
run livejson -o json -- sh -c "chown 2000 $D/merged/jsn*"

# --- --stacks / --flamegraph: folded stacks weighted by copy-up time ------------------
newovl stk
dd if=/dev/zero of=$D/lower/s1 bs=1000 count=7 2>/dev/null
echo two >$D/lower/s2
mountovl
run stk -o json --stacks $OUT/stk.folded --flamegraph $OUT/stk.svg -- chown 1000 $D/merged/s1 $D/merged/s2
emit stk.folded $OUT/stk.folded
head -c 300 $OUT/stk.svg >$OUT/stk.svghead
grep -c ovl_copy_up_one $OUT/stk.svg >$OUT/stk.svgcount
emit stk.svghead $OUT/stk.svghead
emit stk.svgcount $OUT/stk.svgcount

