# Scenarios of the family `image` (checked in xtask/src/scenarios/userland/image.rs): the
# repository's Containerfile built with podman, run as a container the way
# deploy/kubernetes/daemonset.yaml runs it (host pid namespace, the same host paths, read
# only), tracing another container's copy-ups; then stopped as kubelet stops it (SIGTERM).

# The build context as the repository has it: the Containerfile at the root, the static
# binary where `cargo xtask build` puts it (/bin/copyup-trace is that binary).
CTX=/tmp/ctx
mkdir -p /var/lib/docker
mkdir -p $CTX/target/x86_64-unknown-linux-musl/release
cp /src/Containerfile $CTX/Containerfile
cp /bin/copyup-trace $CTX/target/x86_64-unknown-linux-musl/release/copyup-trace
podman build -t localhost/copyup-trace:test -f $CTX/Containerfile $CTX \
    >$OUT/image.build 2>&1
echo $? >$OUT/image.build_rc
podman image inspect -f '{{.Config.Entrypoint}} {{.Config.Cmd}}' localhost/copyup-trace:test \
    >$OUT/image.config 2>&1
emit image.config $OUT/image.config

# The traced container's image, built too: mkimage's files of known sizes.
mkimage /tmp/files
printf 'FROM scratch\nCOPY . /\n' >/tmp/files.Containerfile
podman build -t localhost/files:1 -f /tmp/files.Containerfile /tmp/files >$OUT/files.build 2>&1 ||
    cat $OUT/files.build
podman image inspect --format '{{json .History}}' localhost/files:1 >$OUT/image.history
emit image.history $OUT/image.history

# The DaemonSet's volumes (sockets of runtimes that are not running are left out, as
# kubelet's empty-typed hostPath would leave them empty) and its arguments, plus JSON on
# stdout.
podman run -d --name tracer --privileged --pid=host --network none \
    -v /sys/kernel/btf:/sys/kernel/btf:ro \
    -v /sys/kernel/tracing:/sys/kernel/tracing:ro \
    -v /sys/kernel/debug:/sys/kernel/debug:ro \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
    -v /var/lib/containers/storage:/var/lib/containers/storage:ro \
    -v /var/lib/docker:/var/lib/docker:ro \
    localhost/copyup-trace:test \
    --metrics 0.0.0.0:29435 --metrics-labels trigger,kind,container -o json \
    >/dev/null 2>$OUT/image.run_err || cat $OUT/image.run_err
i=0
until podman logs tracer 2>&1 | grep -q Tracing; do
    sleep 0.2
    i=$((i + 1))
    [ $i -gt 300 ] && echo "tracer did not start" && podman logs tracer && break
done
/bin/guest-ops bpf-objects >$OUT/image.progs_during

SIG=/tmp/sig
mkdir -p $SIG
rm -f $SIG/img
podman run -d --name copier --network none -v $SIG:/sig localhost/files:1 \
    /guest-ops await /sig/img fchown /data/a >/dev/null
podman inspect -f '{{.Name}} {{.Id}} {{.Image}}' copier >$OUT/image.ids
podman inspect -f '{{.GraphDriver.Data.MergedDir}}' copier >$OUT/image.merged
emit image.merged $OUT/image.merged
podman inspect -f '{{.GraphDriver.Data.LowerDir}}' copier >$OUT/image.lower
emit image.lower $OUT/image.lower
emit image.ids $OUT/image.ids
podman exec copier /guest-ops fchown /data/b
touch $SIG/img
podman wait copier >/dev/null

podman stop -t 20 tracer >/dev/null
podman inspect -f '{{.State.ExitCode}}' tracer >$OUT/image.rc
podman logs tracer >$OUT/image.out 2>$OUT/image.err
/bin/guest-ops bpf-objects settled >$OUT/image.progs_after
emit image.build $OUT/image.build
emit image.build_rc $OUT/image.build_rc
emit image.out $OUT/image.out
emit image.err $OUT/image.err
emit image.rc $OUT/image.rc
emit image.progs_during $OUT/image.progs_during
emit image.progs_after $OUT/image.progs_after
podman rm -f tracer copier >/dev/null 2>&1
