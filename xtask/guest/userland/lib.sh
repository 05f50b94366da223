# Guest-side half of the userland test families: this file's helpers, then one part per
# family (runtimes.sh, ...), concatenated by xtask/src/scenarios/userland/mod.rs into the
# one script that runs under dash in the Debian userland guest (xtask/src/userland.rs:
# bookworm with podman, docker, containerd, prometheus, curl) booted by `cargo xtask
# test`. Scenarios run real programs, save raw artifacts as `@@FILE name` ... `@@EOF`
# blocks, and the host side (xtask/src/scenarios/userland/<family>.rs) asserts exact
# values. Nothing here decides pass or fail.
#
# The guest's /init has mounted proc, sys, cgroup2, tracefs, debugfs and bpf, loaded
# overlay, brought up lo and set podman to cgroupfs and file events (no systemd). No
# daemon runs and no registry is reachable: start_containerd / start_dockerd start the
# daemons, mkimage builds an image tree to import.

T=/bin/copyup-trace
OUT=/tmp/out
mkdir -p $OUT

# emit NAME FILE: hand one artifact to the host.
emit() {
    echo "@@FILE $1"
    cat "$2" 2>/dev/null
    echo
    echo "@@EOF"
}

# note NAME TEXT: hand a one-line artifact to the host.
note() {
    echo "$2" >$OUT/$1
    emit $1 $OUT/$1
}

# wait_ready FILE: wait until a tracer running in the background has attached.
wait_ready() {
    i=0
    while ! grep -q Tracing "$1" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
        [ $i -gt 600 ] && return 1
    done
}

# trace_start NAME ARGS...: copyup-trace in the background, stdout/stderr kept; TP is
# its pid. trace_stop NAME: SIGINT, then emit NAME.out, NAME.err, NAME.rc.
trace_start() {
    name=$1
    shift
    "$T" "$@" >$OUT/$name.out 2>$OUT/$name.err &
    TP=$!
    wait_ready $OUT/$name.err
}
trace_stop() {
    kill -INT $2
    wait $2
    echo $? >$OUT/$1.rc
    emit $1.out $OUT/$1.out
    emit $1.err $OUT/$1.err
    emit $1.rc $OUT/$1.rc
}

# wait_count COMM N: until N processes have this comm (containers whose client is
# gone); wait_gone COMM: until none has.
wait_count() {
    i=0
    until [ "$(grep -cx "$1" /proc/[0-9]*/comm 2>/dev/null | grep -c ':1$')" = "$2" ]; do
        sleep 0.1
        i=$((i + 1))
        [ $i -gt 600 ] && echo "waited in vain for $2 processes $1" && return 1
    done
}
wait_gone() {
    wait_count "$1" 0
}

# mkimage DIR: an image tree of known content: /guest-ops (static), /data/a (3000 bytes
# of 'a'), /data/b (5000 bytes of 'b').
mkimage() {
    rm -rf "$1"
    mkdir -p "$1/data"
    head -c 3000 /dev/zero | tr '\0' a >"$1/data/a"
    head -c 5000 /dev/zero | tr '\0' b >"$1/data/b"
    cp /bin/guest-ops "$1/guest-ops"
}

# ctr_remove ID: kills a k8s.io container's task and removes it with its snapshot.
ctr_remove() {
    ctr -n k8s.io task kill -s KILL "$1" >/dev/null 2>&1
    ctr -n k8s.io task rm -f "$1" >/dev/null 2>&1
    ctr -n k8s.io containers rm "$1" >/dev/null 2>&1
}

# start_containerd / start_dockerd: the daemons, as a host without systemd would run
# them (docker on the same containerd; no bridge or iptables: containers run with
# --network none). CTRD and DOCKERD are their pids.
start_containerd() {
    containerd >/tmp/containerd.log 2>&1 &
    CTRD=$!
    i=0
    until ctr version >/dev/null 2>&1; do
        sleep 0.2
        i=$((i + 1))
        [ $i -gt 300 ] && echo "containerd did not start" && return 1
    done
}
start_dockerd() {
    dockerd --iptables=false --ip6tables=false --bridge=none \
        --containerd=/run/containerd/containerd.sock >/tmp/dockerd.log 2>&1 &
    DOCKERD=$!
    i=0
    until docker version >/dev/null 2>&1; do
        sleep 0.2
        i=$((i + 1))
        [ $i -gt 300 ] && echo "dockerd did not start" && tail /tmp/dockerd.log && return 1
    done
}

