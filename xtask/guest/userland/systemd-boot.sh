#!/bin/sh
# PID 1 of the userland guest for the families that need systemd (scenarios::userland::deb):
# /init (xtask/src/guest.rs) execs this instead of running /script.sh itself. It does what
# systemd does not (the overlay module of the kernel under test, podman without dbus), has
# systemd boot a target of its own (basic.target and one unit that runs /script.sh, not
# multi-user.target, so no daemon the tree has enabled starts), and that unit reports as
# /init does: the script's output, then the done marker with the taint flags, on ttyS1,
# then powers off.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
insmod /usr/lib/overlay.ko || echo "init: insmod overlay.ko failed"
mkdir -p /run/copyup-guest
cat /proc/sys/kernel/tainted >/etc/copyup-guest-taint0

# podman without systemd's dbus API: cgroupfs, events to a file (as /init sets it).
mkdir -p /etc/containers
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    >/etc/containers/containers.conf

S=/etc/systemd/system
mkdir -p /etc/systemd/system.conf.d
# The console is the kernel's (faults are read from it): no status lines there.
printf '[Manager]\nShowStatus=no\n' >/etc/systemd/system.conf.d/copyup-guest.conf
cat >$S/copyup-guest.target <<'EOF'
[Unit]
Description=copyup-trace guest run
Requires=basic.target copyup-guest.service
After=basic.target
AllowIsolate=yes
EOF
cat >$S/copyup-guest.service <<'EOF'
[Unit]
Description=copyup-trace guest script
After=basic.target

[Service]
Type=oneshot
TimeoutStartSec=infinity
ExecStart=/usr/lib/copyup-guest/run
StandardOutput=journal+console
EOF
mkdir -p /usr/lib/copyup-guest
cat >/usr/lib/copyup-guest/run <<'EOF'
#!/bin/sh
stty -F /dev/ttyS1 raw -echo 2>/dev/null
cd /
echo "init: running /script.sh"
sh /script.sh </dev/null >/run/script.out 2>&1
rc=$?
echo "init: /script.sh exited with $rc"
taint1=$(cat /proc/sys/kernel/tainted)
cat /run/script.out >/dev/ttyS1
echo "@@GUEST-DONE rc=$rc taint=$(cat /etc/copyup-guest-taint0),$taint1" >/dev/ttyS1
echo o >/proc/sysrq-trigger
sleep 10
EOF
chmod 755 /usr/lib/copyup-guest/run
ln -sf $S/copyup-guest.target $S/default.target
# Sockets the tree enabled would start docker's and podman's services on a connection:
# the script starts the daemons it needs itself.
ln -sf /dev/null $S/docker.socket
ln -sf /dev/null $S/podman.socket
exec /lib/systemd/systemd
