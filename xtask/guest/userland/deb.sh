# Scenarios of the family `deb` (checked in xtask/src/scenarios/userland/deb.rs), in a boot
# of its own with systemd as PID 1 (guest/userland/systemd-boot.sh): the release as a user
# gets it from `cargo xtask dist` (/root/dist), with no copyup-trace installed before.
# The .deb is installed with apt, offline; its man pages and completions are looked at;
# its service is enabled and started by systemd as shipped and traces a podman container,
# whose copy-ups its Prometheus metrics count; a drop-in adds --stacks (kernel symbols
# through /proc/kallsyms, under the unit's sandbox); the service is stopped; the OCI image
# archive is loaded by podman and docker and run.

DIST=/root/dist
V=$(ls $DIST/copyup-trace-*.oci.tar | sed "s|.*/copyup-trace-\(.*\)\.oci\.tar|\1|")
note deb.pid1 "$(cat /proc/1/comm)"
note deb.preinstalled "$(command -v copyup-trace || echo none)"

# Why the unit grants CAP_SYSLOG: /proc/kallsyms as a process with the unit's other
# capabilities reads it (Debian's perf_event_paranoid is 3: addresses need CAP_SYSLOG).
setpriv --bounding-set=-all,+sys_admin,+bpf,+perfmon,+sys_resource \
    sh -c 'grep -c "^0000000000000000 " /proc/kallsyms; grep -c "" /proc/kallsyms' \
    >$OUT/deb.kallsyms_nosyslog 2>&1
emit deb.kallsyms_nosyslog $OUT/deb.kallsyms_nosyslog
# Why it grants CAP_SYS_PTRACE: in the unit's own mount namespace the tool finds the
# host's mounts through /proc/1 (ns/mnt, mountinfo, root), and the kernel opens PID 1's
# ns and root links (ptrace read access) to a process with fewer capabilities than PID 1
# only with CAP_SYS_PTRACE.
for caps in sys_admin,+bpf,+perfmon,+sys_resource,+syslog \
    sys_admin,+bpf,+perfmon,+sys_resource,+syslog,+sys_ptrace; do
    setpriv --bounding-set=-all,+$caps sh -c \
        'readlink -v /proc/1/ns/mnt >/dev/null && echo ns ok; head -c0 /proc/1/mountinfo && echo mountinfo ok; ls /proc/1/root/ >/dev/null && echo root ok' 2>&1 |
        sed 's/^.*: //'
    echo --
done >$OUT/deb.proc1 2>&1
emit deb.proc1 $OUT/deb.proc1

# This tree's dpkg leaves out /usr/share/man and /usr/share/doc (mmdebstrap path-exclude,
# to keep the tree small); a Debian host keeps them, so the exclusion goes first.
rm -f /etc/dpkg/dpkg.cfg.d/99mmdebstrap
cd $DIST
apt install -y ./copyup-trace_*.deb >$OUT/deb.apt 2>&1
echo $? >$OUT/deb.apt_rc
cd /
emit deb.apt $OUT/deb.apt
emit deb.apt_rc $OUT/deb.apt_rc
dpkg-query -W -f '${Status}|${Version}|${Architecture}|${Depends}\n' copyup-trace >$OUT/deb.status 2>&1
emit deb.status $OUT/deb.status
dpkg -L copyup-trace | sort >$OUT/deb.files
emit deb.files $OUT/deb.files
stat -c '%n %a %U:%G' /usr/bin/copyup-trace /lib/systemd/system/copyup-trace.service >$OUT/deb.modes
emit deb.modes $OUT/deb.modes
note deb.version "$(copyup-trace --version)"
# What was installed, byte for byte (man pages uncompressed), against dist's files.
{
    for f in /usr/bin/copyup-trace /lib/systemd/system/copyup-trace.service \
        /usr/share/bash-completion/completions/copyup-trace \
        /usr/share/zsh/vendor-completions/_copyup-trace \
        /usr/share/fish/vendor_completions.d/copyup-trace.fish; do
        echo "$(sha256sum <$f | cut -d' ' -f1) $f"
    done
    for f in /usr/share/man/man1/copyup-trace.1.gz /usr/share/man/man1/copyup-trace-check.1.gz; do
        echo "$(zcat $f | sha256sum | cut -d' ' -f1) $f"
    done
} >$OUT/deb.sums
emit deb.sums $OUT/deb.sums
note deb.enabled "$(systemctl is-enabled copyup-trace.service 2>&1)"
note deb.active "$(systemctl is-active copyup-trace.service 2>&1)"

# The man page as man(1) would read it (no man-db here): its header and options.
zcat /usr/share/man/man1/copyup-trace.1.gz >$OUT/deb.man 2>&1
emit deb.man $OUT/deb.man
zcat /usr/share/man/man1/copyup-trace-check.1.gz >$OUT/deb.man_check 2>&1
emit deb.man_check $OUT/deb.man_check
# bash completion, run: what `copyup-trace --ou<TAB>` and `copyup-trace -o <TAB>` offer,
# through the function the file registers for copyup-trace.
bash -c '. /usr/share/bash-completion/completions/copyup-trace
f=$(complete -p copyup-trace | sed "s/.*-F \([^ ]*\) .*/\1/")
COMP_WORDS=(copyup-trace --ou); COMP_CWORD=1
$f copyup-trace --ou copyup-trace; echo "${COMPREPLY[*]}"
COMP_WORDS=(copyup-trace -o ""); COMP_CWORD=2
$f copyup-trace "" -o; echo "${COMPREPLY[*]}"' >$OUT/deb.bash 2>&1
emit deb.bash $OUT/deb.bash

# healthy: until /healthz answers ok (the probes are attached), at most 120 s.
healthy() {
    i=0
    until [ "$(curl -s --max-time 2 http://127.0.0.1:29435/healthz)" = ok ]; do
        sleep 0.5
        i=$((i + 1))
        [ $i -gt 240 ] && echo "the service did not become healthy" && return 1
    done
}

# --- the service as shipped -------------------------------------------------------
systemctl enable --now copyup-trace.service >$OUT/deb.enable 2>&1
echo $? >>$OUT/deb.enable
emit deb.enable $OUT/deb.enable
healthy
systemctl show copyup-trace.service -p ActiveState -p SubState -p NRestarts \
    >$OUT/deb.show_running
emit deb.show_running $OUT/deb.show_running
/bin/guest-ops bpf-objects >$OUT/deb.progs_during

# A container of known files (mkimage) that waits; `podman exec` chowns /data/b, then
# /data/a. It runs until the metrics are read: a series goes once its containers are
# gone (the tool looks every second), as cAdvisor's do.
mkimage /tmp/files
tar -C /tmp/files -c . | podman import - localhost/files:1 >/dev/null
podman run -d --name copier --network none localhost/files:1 \
    /guest-ops await /never fchown /data/a >/dev/null
podman exec copier /guest-ops fchown /data/b
podman exec copier /guest-ops fchown /data/a
# Copy-ups are counted as the tool drains its ring: until the file series shows both
# files' bytes, at most 30 s.
i=0
until curl -s http://127.0.0.1:29435/metrics | grep -q 'copied_bytes_total{.*container="copier".*} 8000'; do
    sleep 0.5
    i=$((i + 1))
    [ $i -gt 60 ] && break
done
curl -s http://127.0.0.1:29435/metrics >$OUT/deb.metrics
emit deb.metrics $OUT/deb.metrics
podman rm -f -t 0 copier >/dev/null 2>&1

systemctl stop copyup-trace.service
systemctl show copyup-trace.service -p ActiveState -p Result -p ExecMainStatus -p NRestarts \
    >$OUT/deb.show_stopped
emit deb.show_stopped $OUT/deb.show_stopped
/bin/guest-ops bpf-objects settled >$OUT/deb.progs_after
emit deb.progs_during $OUT/deb.progs_during
emit deb.progs_after $OUT/deb.progs_after
journalctl -u copyup-trace.service -o cat --no-pager >$OUT/deb.journal 2>&1
emit deb.journal $OUT/deb.journal

# --- --stacks and -o json under the unit's sandbox: kernel stacks need /proc/kallsyms;
# each record's container, layer and host path, seen from the unit's mount namespace. ---
mkdir -p /etc/systemd/system/copyup-trace.service.d
cat >/etc/systemd/system/copyup-trace.service.d/stacks.conf <<'EOF'
[Service]
RuntimeDirectory=copyup-trace
RuntimeDirectoryPreserve=yes
ExecStart=
ExecStart=/usr/bin/copyup-trace --metrics 0.0.0.0:29435 --stacks /run/copyup-trace/stacks.folded -o json
EOF
systemctl daemon-reload
journalctl --rotate >/dev/null 2>&1
SINCE=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start copyup-trace.service
healthy
podman run -d --name stacker --network none localhost/files:1 \
    /guest-ops await /never fchown /data/a >/dev/null
podman inspect -f '{{.Id}} {{.GraphDriver.Data.MergedDir}} {{.GraphDriver.Data.LowerDir}}' \
    stacker >$OUT/deb.stacker
emit deb.stacker $OUT/deb.stacker
podman exec stacker /guest-ops fchown /data/b
sleep 2
systemctl stop copyup-trace.service
podman rm -f -t 0 stacker >/dev/null 2>&1
systemctl show copyup-trace.service -p Result -p ExecMainStatus >$OUT/deb.stacks_show
emit deb.stacks_show $OUT/deb.stacks_show
cp /run/copyup-trace/stacks.folded $OUT/deb.stacks 2>&1
emit deb.stacks $OUT/deb.stacks
journalctl -u copyup-trace.service -o cat --no-pager --since "$SINCE" >$OUT/deb.stacks_journal 2>&1
emit deb.stacks_journal $OUT/deb.stacks_journal
rm -r /etc/systemd/system/copyup-trace.service.d
systemctl daemon-reload

# --- the OCI image archive, loaded by podman and by docker -----------------------------
OCI=$(ls $DIST/copyup-trace-*.oci.tar)
podman load -i "$OCI" >$OUT/deb.podman_load 2>&1
emit deb.podman_load $OUT/deb.podman_load
podman image inspect -f '{{.Architecture}} {{.Config.Entrypoint}} {{.Config.Cmd}}' \
    copyup-trace:$V >$OUT/deb.podman_image 2>&1
emit deb.podman_image $OUT/deb.podman_image
podman run --rm --network none copyup-trace:$V --version >$OUT/deb.podman_run 2>&1
emit deb.podman_run $OUT/deb.podman_run
start_containerd && start_dockerd
docker load -i "$OCI" >$OUT/deb.docker_load 2>&1
emit deb.docker_load $OUT/deb.docker_load
docker run --rm --network none --security-opt apparmor=unconfined copyup-trace:$V --version >$OUT/deb.docker_run 2>&1
emit deb.docker_run $OUT/deb.docker_run
kill $DOCKERD $CTRD 2>/dev/null
