# Scenarios of the family `runtimes` (checked in xtask/src/scenarios/userland/runtimes.rs):
# which container, of which image and pod, copied up, as podman, docker and containerd
# name them. Every container runs /guest-ops from the image of mkimage: it waits for a
# file in the shared /sig, then fchowns /data/a or /data/b (copying up /data and the file).
# Two containers run at once, but copy up one after the other: with copy-ups at the same
# instant a tracer has been seen to miss one on 7.3 (kernel side, not attribution).

SIG=/tmp/sig
mkdir -p $SIG
mkimage /tmp/img
tar -C /tmp/img -c . | podman import - localhost/app:1 >/dev/null 2>$OUT/import.err ||
    cat $OUT/import.err

# overlays NAME WHEN: how many overlay mounts there are (`NAME.overlays_WHEN`).
overlays() {
    grep -c ' - overlay ' /proc/self/mountinfo >$OUT/$1.overlays_$2
    emit $1.overlays_$2 $OUT/$1.overlays_$2
}

# --- podman: two named containers of one image copy up at once ----------------------
rm -f $SIG/go1 $SIG/go2
overlays podman before
podman run -d --name web1 --network none -v $SIG:/sig localhost/app:1 \
    /guest-ops await /sig/go1 fchown /data/a >/dev/null
podman run -d --name web2 --network none -v $SIG:/sig localhost/app:1 \
    /guest-ops await /sig/go2 fchown /data/b >/dev/null
podman inspect -f '{{.Name}} {{.Id}} {{.Image}}' web1 web2 >$OUT/podman.ids
emit podman.ids $OUT/podman.ids
trace_start podman -o json --report $OUT/podman.report
TA=$TP
trace_start podman-one -o json --container web1
TB=$TP
touch $SIG/go1
podman wait web1 >/dev/null
touch $SIG/go2
podman wait web2 >/dev/null
# Removed while still traced: their overlays and layers go as untraced.
podman rm web1 web2 >$OUT/podman.rm 2>&1
echo $? >$OUT/podman.rm_rc
emit podman.rm $OUT/podman.rm
emit podman.rm_rc $OUT/podman.rm_rc
overlays podman after
trace_stop podman $TA
trace_stop podman-one $TB
emit podman.report $OUT/podman.report

# --- podman's store unreadable: ids only, one warning ------------------------------
rm -f $SIG/go3
podman run -d --name web3 --network none -v $SIG:/sig localhost/app:1 \
    /guest-ops await /sig/go3 fchown /data/a >/dev/null
podman inspect -f '{{.Id}}' web3 >$OUT/podman-broken.id
emit podman-broken.id $OUT/podman-broken.id
CJ=/var/lib/containers/storage/overlay-containers/containers.json
cp $CJ /tmp/containers.json.saved
echo 'not json' >$CJ
trace_start podman-broken -o json
touch $SIG/go3
wait_gone guest-ops
trace_stop podman-broken $TP
cp /tmp/containers.json.saved $CJ

# --- CRI-O: a container of containers/storage with the config CRI-O writes ----------
# No CRI-O package is in the Debian suites here. podman creates a container in
# containers/storage; its userdata/config.json is then what CRI-O writes there (kubelet's
# io.kubernetes.* labels and CRI-O's image annotations), and a process in the cgroup
# CRI-O gives it (crio-<id>.scope) fchowns /data/a through the container's rootfs.
CID=$(podman create --name crio1 --network none localhost/app:1 /guest-ops)
IMG=$(podman inspect -f '{{.Image}}' crio1)
echo "$CID $IMG" >$OUT/crio.ids
emit crio.ids $OUT/crio.ids
ROOT=$(podman mount $CID)
mkdir -p /var/lib/containers/storage/overlay-containers/$CID/userdata
printf '%s' "{\"ociVersion\":\"1.0.2\",\"annotations\":{\"io.kubernetes.container.name\":\"api\",\"io.kubernetes.pod.name\":\"shop-0\",\"io.kubernetes.pod.namespace\":\"prod\",\"io.kubernetes.cri-o.ImageName\":\"localhost/app:1\",\"io.kubernetes.cri-o.ImageRef\":\"sha256:$IMG\",\"io.kubernetes.cri-o.ContainerType\":\"container\"}}" \
    >/var/lib/containers/storage/overlay-containers/$CID/userdata/config.json
CG=/sys/fs/cgroup/system.slice/crio-$CID.scope
mkdir -p $CG
trace_start crio -o json
sh -c "echo \$\$ > $CG/cgroup.procs; exec /bin/guest-ops fchown $ROOT/data/a"
trace_stop crio $TP
rmdir $CG
podman umount $CID >/dev/null
podman rm $CID >/dev/null

# --- docker (dockerd on containerd): the same, names and images from docker ----------
start_containerd
start_dockerd
tar -C /tmp/img -c . | docker import - app:1 >/dev/null
rm -f $SIG/go1 $SIG/go2
overlays docker before
docker run -d --name dweb1 --network none -v $SIG:/sig app:1 \
    /guest-ops await /sig/go1 fchown /data/a >/dev/null
docker run -d --name dweb2 --network none -v $SIG:/sig app:1 \
    /guest-ops await /sig/go2 fchown /data/b >/dev/null
docker inspect -f '{{.Name}} {{.Id}} {{.Image}}' dweb1 dweb2 >$OUT/docker.ids
emit docker.ids $OUT/docker.ids
trace_start docker -o json --report $OUT/docker.report
TA=$TP
trace_start docker-one -o json --container dweb2
TB=$TP
trace_start docker-table --by container --by image
TC=$TP
touch $SIG/go1
docker wait dweb1 >/dev/null
touch $SIG/go2
docker wait dweb2 >/dev/null
docker rm dweb1 dweb2 >$OUT/docker.rm 2>&1
echo $? >$OUT/docker.rm_rc
emit docker.rm $OUT/docker.rm
emit docker.rm_rc $OUT/docker.rm_rc
overlays docker after
trace_stop docker $TA
trace_stop docker-one $TB
trace_stop docker-table $TC
emit docker.report $OUT/docker.report

# --- containerd with the CRI labels kubelet sets: pod, namespace, container name ------
podman save --format oci-archive -o /tmp/app.tar localhost/app:1 >/dev/null 2>&1
ctr -n k8s.io images import /tmp/app.tar >/dev/null
CID=4f1c0a9e2b7d43c58e6a1f0b9c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d
CID2=5a2d1b0f3c8e54d69f7b2a1c0d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e
CID3=6b3e2c1a4d9f65e7a08c3b2d1e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f
POD=pod7c9e6679-7425-40de-944b-e07fc1f90ae7
# ctr_run ID GO FILE [LABEL...]: a container of a pod (kubelet's cgroupfs layout), in
# the background.
ctr_run() {
    id=$1 go=$2 file=$3
    shift 3
    ctr -n k8s.io run "$@" --cgroup /kubepods/besteffort/$POD/$id \
        --mount type=bind,src=$SIG,dst=/sig,options=rbind:rw \
        localhost/app:1 $id /guest-ops await /sig/$go fchown /data/$file </dev/null >/dev/null 2>&1 &
}
rm -f $SIG/go $SIG/go2 $SIG/go3
overlays cri before
ctr_run $CID go a --label io.kubernetes.pod.name=web-0 \
    --label io.kubernetes.pod.namespace=shop --label io.kubernetes.container.name=nginx
CP=$!
ctr_run $CID2 go2 a
ctr_run $CID3 go3 b
trace_start cri -o json --report $OUT/cri.report --metrics 127.0.0.1:29435
touch $SIG/go
wait $CP
curl -s http://127.0.0.1:29435/metrics >$OUT/cri.metrics
emit cri.metrics $OUT/cri.metrics
# The exited container and its snapshot removed while traced.
# `ctr run` deleted the task as it ended; the container and its snapshot remain.
ctr -n k8s.io containers rm $CID >$OUT/cri.rm 2>&1
echo $? >$OUT/cri.rm_rc
overlays cri after
ctr -n k8s.io snapshots ls 2>&1 | grep -c "^$CID " >$OUT/cri.snapshot_left
emit cri.rm $OUT/cri.rm
emit cri.rm_rc $OUT/cri.rm_rc
emit cri.snapshot_left $OUT/cri.snapshot_left
trace_stop cri $TP
emit cri.report $OUT/cri.report

# --- containerd down, its socket gone: ids still reported, one warning ---------------
wait_count guest-ops 2
kill $DOCKERD
wait $DOCKERD
kill $CTRD
wait $CTRD
rm -f /run/containerd/containerd.sock
trace_start down -o json
touch $SIG/go2
wait_count guest-ops 1
touch $SIG/go3
wait_gone guest-ops
trace_stop down $TP
