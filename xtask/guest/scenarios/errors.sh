# Scenarios of the family `errors` (checked in xtask/src/scenarios/errors.rs): the right
# kernel, then how the tool fails.

echo "kernel $(uname -r)" >$OUT/uname
emit uname $OUT/uname

# --- errors: overlay not loaded, bad command ----------------------------------------
rmmod overlay && {
    run no_overlay -o json -- true
    insmod /lib/overlay.ko
}
run not_found -o json -- /no/such/command
run exit_status -o json -- sh -c 'exit 3'
run bad_flag --min-size lots

# --- a user with capabilities only, as the deploy files run it -------------------------
# uid 1000 holding only the capabilities named (CAP_SYS_ADMIN 21, CAP_SYS_RESOURCE 24,
# CAP_PERFMON 38, CAP_BPF 39) chmods its own lower file through the overlay, traced.
newovl caps
echo hello >$D/lower/f
chown 1000:1000 $D/lower/f
mountovl
cat /proc/sys/kernel/perf_event_paranoid >$OUT/caps.paranoid
emit caps.paranoid $OUT/caps.paranoid
for c in bpf:38,39,24 admin:21,24; do
    n=caps${c%%:*}
    $G as-user 1000 ${c#*:} "$T" -o json -- chmod 600 $D/merged/f >$OUT/$n.out 2>$OUT/$n.err
    echo $? >$OUT/$n.rc
    for f in out err rc; do emit $n.$f $OUT/$n.$f; done
done
# --stacks without CAP_SYSLOG: kallsyms shows only zeros (paranoid 3), said at start.
$G as-user 1000 21,24 "$T" --stacks /tmp/caps.folded -- true >$OUT/capsstk.out 2>$OUT/capsstk.err
echo $? >$OUT/capsstk.rc
for f in out err rc; do emit capsstk.$f $OUT/capsstk.$f; done
