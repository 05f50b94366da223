
# Scenarios of the family `imglayers` (checked in xtask/src/scenarios/userland/imglayers.rs):
# a real 3-layer image built by podman (and docker): which layer each copy-up came from, as
# the runtime's store names it, and --by layer's bytes, sizes and shares. Layers, bottom
# up: the base of mkimage (/data/a, /data/b, /guest-ops); /mid/m (2000 bytes) and /both
# (1000); /top/t (4000) and /both again (1500: the topmost copy wins), with an ENV step
# (an empty layer in the history) between them. A container waits forever; `exec` fchowns
# one file of each layer, one after the other, /both to the owner it already has (root).
# Artifacts are named img-* (one script with the other families: names must not meet).

mkdir -p /tmp/ctx/mid/mid /tmp/ctx/top/top
head -c 2000 /dev/zero | tr '\0' m >/tmp/ctx/mid/mid/m
head -c 1000 /dev/zero | tr '\0' 1 >/tmp/ctx/mid/both
head -c 4000 /dev/zero | tr '\0' t >/tmp/ctx/top/top/t
head -c 1500 /dev/zero | tr '\0' 2 >/tmp/ctx/top/both
stat -c %s /bin/guest-ops >$OUT/img-guest-ops.size
emit img-guest-ops.size $OUT/img-guest-ops.size
# layered_build TOOL BASE TAG: base, then one layer per COPY.
layered_build() {
    printf 'FROM %s\nCOPY mid/ /\nENV STEP=2\nCOPY top/ /\n' "$2" >/tmp/ctx/Containerfile
    $1 build -q -f /tmp/ctx/Containerfile -t $3 /tmp/ctx >$OUT/img-$1-build.out 2>&1 ||
        cat $OUT/img-$1-build.out
}
# layered_run TOOL NAME IMAGE: the container, its store's view, then the traced copy-ups.
layered_run() {
    tool=$1 ctn=$2
    $tool run -d --name $ctn --network none $3 /guest-ops await /never fchown /data/a >/dev/null
    $tool image inspect --format '{{json .RootFS.Layers}}' $3 >$OUT/img-$tool.rootfs
    $tool image inspect --format '{{json .GraphDriver}}' $3 >$OUT/img-$tool.image-driver
    $tool inspect --format '{{json .GraphDriver}}' $ctn >$OUT/img-$tool.driver
    # The image's history as the runtime shows it: podman's inspect has the config's
    # entries with `empty_layer`; docker's history lists them newest first with sizes.
    if [ $tool = podman ]; then
        podman image inspect --format '{{json .History}}' $3 >$OUT/img-$tool.history
    else
        docker history --no-trunc --format '{{json .}}' $3 >$OUT/img-$tool.history
    fi
    for f in rootfs image-driver driver history; do emit img-$tool.$f $OUT/img-$tool.$f; done
    trace_start img-$tool-layers -o json --by layer --report $OUT/img-$tool-layers.report
    TA=$TP
    trace_start img-$tool-table --by layer --by process
    TB=$TP
    for f in /data/a /mid/m /top/t; do
        $tool exec $ctn /guest-ops fchown $f
    done
    $tool exec $ctn /guest-ops fchown /both 0 0
    trace_stop img-$tool-layers $TA
    trace_stop img-$tool-table $TB
    emit img-$tool-layers.report $OUT/img-$tool-layers.report
    $tool rm -f -t 0 $ctn >/dev/null 2>&1
}

# --- podman: built from a locally imported base --------------------------------------
mkimage /tmp/base
tar -C /tmp/base -c . | podman import - localhost/base:1 >/dev/null
layered_build podman localhost/base:1 localhost/layered:1
cp /var/lib/containers/storage/overlay-layers/layers.json $OUT/img-podman.layers
emit img-podman.layers $OUT/img-podman.layers
layered_run podman img1 localhost/layered:1

# --- docker (overlay2, the classic builder): the same image, ids from its layer db ------
start_containerd
start_dockerd
tar -C /tmp/base -c . | docker import - base:1 >/dev/null
DOCKER_BUILDKIT=0 layered_build docker base:1 layered:1
# diff id and overlay2 directory of every layer docker knows
for l in /var/lib/docker/image/overlay2/layerdb/sha256/*/; do
    echo "$(cat $l/diff) $(cat $l/cache-id)"
done >$OUT/img-docker.layers
emit img-docker.layers $OUT/img-docker.layers
layered_run docker dimg1 layered:1

# --- containerd: podman's image imported, a container of a pod (kubelet's cgroupfs
# layout, so that containerd is asked); its rootfs mount as the guest lists it -----------
podman save --format oci-archive -o /tmp/layered.tar localhost/layered:1 >/dev/null 2>&1
ctr -n k8s.io images import /tmp/layered.tar >/dev/null
CIMG=8d5f4e3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a19080f7e6d5c4b3a29180
ctr -n k8s.io run -d --cgroup /kubepods/besteffort/pod2e0c7a41-5b3d-4c2e-9f1a-0b9c8d7e6f5a/$CIMG \
    localhost/layered:1 $CIMG /guest-ops await /never fchown /data/a >/dev/null
grep " /run/containerd/io.containerd.runtime.v2.task/k8s.io/$CIMG/rootfs " /proc/self/mountinfo \
    >$OUT/img-containerd.mount
emit img-containerd.mount $OUT/img-containerd.mount
trace_start img-containerd-layers -o json --by layer --report $OUT/img-containerd-layers.report
TA=$TP
n=0
for f in /data/a /mid/m /top/t; do
    n=$((n + 1))
    ctr -n k8s.io task exec --exec-id e$n $CIMG /guest-ops fchown $f
done
ctr -n k8s.io task exec --exec-id e0 $CIMG /guest-ops fchown /both 0 0
trace_stop img-containerd-layers $TA
emit img-containerd-layers.report $OUT/img-containerd-layers.report
ctr_remove $CIMG
kill $DOCKERD
wait $DOCKERD
kill $CTRD
wait $CTRD
