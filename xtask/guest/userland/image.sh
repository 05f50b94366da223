# Scenarios of the family `image` (checked in xtask/src/scenarios/userland/image.rs): the
# repository's Containerfile built with podman and run as deploy/kubernetes/daemonset.yaml's
# pod as written (`run_pod`, which xtask generates from the manifest), tracing another
# container's copy-ups; an overlay unmounted on the host leaves no mount in the pod;
# then the pod is stopped as kubelet stops it (SIGTERM, its grace period).

# The build context as the repository has it: the Containerfile at the root, the static
# binary where `cargo xtask build` puts it (/bin/copyup-trace is that binary).
CTX=/tmp/ctx
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

# Mounts shared, as systemd makes every host's (and as containerd requires of a
# HostToContainer hostPath's mount); this guest's own init leaves them private.
mount --make-rshared /
# An overlay mounted under /var/lib before the pod starts, as a runtime's container
# overlay is: unmounted on the host later, it must be gone from the pod's mount table too.
SIG=/tmp/sig
mkdir -p $SIG
rm -f $SIG/img
EARLY=/var/lib/early/m
mkdir -p /var/lib/early/l /var/lib/early/u /var/lib/early/w $EARLY
mount -t overlay overlay \
    -o lowerdir=/var/lib/early/l,upperdir=/var/lib/early/u,workdir=/var/lib/early/w $EARLY

# The DaemonSet's pod as written (run_pod, generated from the manifest by xtask's
# pod.rs: its capabilities, read-only root, mounts and arguments), plus JSON on stdout.
. /src/pod.sh
run_pod tracer localhost/copyup-trace:test -o json >/dev/null 2>$OUT/image.run_err
echo $? >$OUT/image.run_rc
emit image.run_rc $OUT/image.run_rc
emit image.run_err $OUT/image.run_err
i=0
until podman logs tracer 2>&1 | grep -q Tracing; do
    sleep 0.2
    i=$((i + 1))
    [ $i -gt 300 ] && echo "tracer did not start" && podman logs tracer && break
done
TPID=$(podman inspect -f '{{.State.Pid}}' tracer)
grep -c " $EARLY " /proc/$TPID/mountinfo >$OUT/image.early_in_pod
/bin/guest-ops bpf-objects >$OUT/image.progs_during

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

# A Kubernetes pod's container under containerd (kubelet's cgroup layout, its CRI labels),
# traced by the same pod: named through containerd's socket in the pod's /run, its layer
# a snapshot directory in the pod's /var/lib.
start_containerd
podman save --format oci-archive -o /tmp/files.tar localhost/files:1 >/dev/null 2>&1
ctr -n k8s.io images import /tmp/files.tar >/dev/null
KID=9e4d2c1b0a7f48e5b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0
ctr -n k8s.io run -d --cgroup /kubepods/besteffort/pod3f1e2d4c-5b6a-4789-8a0b-1c2d3e4f5a6b/$KID \
    --label io.kubernetes.pod.name=web-0 --label io.kubernetes.pod.namespace=shop \
    --label io.kubernetes.container.name=nginx \
    localhost/files:1 $KID /guest-ops await /never now >/dev/null
grep " /run/containerd/io.containerd.runtime.v2.task/k8s.io/$KID/rootfs " /proc/self/mountinfo \
    >$OUT/image.k8s_mount
emit image.k8s_mount $OUT/image.k8s_mount
ctr -n k8s.io task exec --exec-id e1 $KID /guest-ops fchown /data/a
# containerd stays until the pod has written the record, which waits for its name.
i=0
until podman logs tracer 2>/dev/null | grep -q "$KID"; do
    sleep 0.1
    i=$((i + 1))
    [ $i -gt 300 ] && echo "no record of the containerd container" && break
done
ctr_remove $KID
kill $CTRD
wait $CTRD

# The host unmounts the early overlay (its directory stays): the pod's copy of that
# mount must be gone as well, or the pod would keep the overlay alive.
umount $EARLY
grep -c " $EARLY " /proc/self/mountinfo >>$OUT/image.early_in_pod
grep -c " $EARLY " /proc/$TPID/mountinfo >>$OUT/image.early_in_pod
emit image.early_in_pod $OUT/image.early_in_pod

podman stop -t $POD_GRACE tracer >/dev/null
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
rm -rf /var/lib/early
