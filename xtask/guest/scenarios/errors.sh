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

