# Scenarios of the family `fleet` (checked in xtask/src/scenarios/fleet.rs): the
# --timeline file and the --metrics endpoint scraped with busybox wget.

# --- --timeline: the trace-event file of a run, next to its JSON records ---------------
newovl tl
mkdir -p $D/lower/d/sub
dd if=/dev/zero of=$D/lower/d/sub/big bs=1024 count=300 2>/dev/null
echo small >$D/lower/d/small
touch "$D/lower/$(printf 'tl\033[31m\nx')"
i=0
while [ $i -lt 4 ]; do
    dd if=/dev/zero of=$D/lower/t$i bs=1000 count=$((i + 1)) 2>/dev/null
    i=$((i + 1))
done
mountovl
run tl -o json --timeline $OUT/tl.json -- sh -c "chown -R 1000 $D/merged/d $D/merged/tl*; $G threads 4 $D/merged/t"
emit tl.json $OUT/tl.json

# --- --metrics: exact counts after a known workload; SIGTERM leaves nothing -----------
# The guest boots with loopback down.
ifconfig lo 127.0.0.1 up
KL=/sys/kernel/debug/kprobes/list
MURL=http://127.0.0.1:29435
newovl met
$G mkfiles $D/lower/m 10 3000
mountovl
"$T" --metrics 127.0.0.1:29435 -o json >$OUT/met.out 2>$OUT/met.err &
TP=$!
wait_ready $OUT/met.err
fetch $OUT/met.healthz $MURL/healthz || diag $TP >>$OUT/met.hung
fetch $OUT/met.before $MURL/metrics || diag $TP >>$OUT/met.hung
chown -R 1000:1000 $D/merged/m
# Records reach the counters within the 25 ms drain interval.
sleep 1
fetch $OUT/met.after $MURL/metrics || diag $TP >>$OUT/met.hung
# A second endpoint on the same port: a one-line error, nothing else changes.
"$T" --metrics 127.0.0.1:29435 -d 5 >$OUT/busy.out 2>$OUT/busy.err
echo $? >$OUT/busy.rc
fetch $OUT/met.openmetrics $MURL/metrics --header 'Accept: application/openmetrics-text;version=1.0.0' ||
    diag $TP >>$OUT/met.hung
grep -c ovl_ $KL >$OUT/met.kprobes_during
$G bpf-objects >$OUT/met.progs_during
stop_tool $TP met
echo $? >$OUT/met.rc
sleep 0.5
grep -c ovl_ $KL >$OUT/met.kprobes_after
$G bpf-objects settled >$OUT/met.progs_after
fetch $OUT/met.gone $MURL/healthz 2>/dev/null
echo $? >$OUT/met.gone_rc
for f in out err rc hung healthz before after openmetrics kprobes_during kprobes_after progs_during progs_after gone_rc; do
    emit met.$f $OUT/met.$f
done
for f in out err rc; do emit busy.$f $OUT/busy.$f; done

# --- Debian's Prometheus server scraping --metrics every second; a restart of the tool -
PURL=http://127.0.0.1:9090
cat >$OUT/prom.yml <<'YML'
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: copyup-trace
    static_configs:
      - targets: ['127.0.0.1:29435']
YML
# query FILE PROMQL: the JSON answer of an instant query through Prometheus' HTTP API (a
# form POST: no URL encoding needed).
query() {
    fetch "$1" $PURL/api/v1/query --post-data "query=$2"
}
# promql NAME PROMQL: the same, handed to the host.
promql() {
    query $OUT/prom.$1 "$2" 2>$OUT/prom.$1.err
    cat $OUT/prom.$1.err >>$OUT/prom.$1
    emit prom.$1 $OUT/prom.$1
}
# The first sample value in a query's JSON answer.
value() {
    sed -n 's/.*"value":\[[^,]*,"\([^"]*\)".*/\1/p' "$1"
}
# scraped_twice: wait until Prometheus has scraped the tool twice more (each scrape adds
# a sample of `up`), so that what the tool counted so far is in its database.
scraped_twice() {
    query $OUT/prom.n 'count_over_time(up[1h])'
    n0=$(value $OUT/prom.n)
    i=0
    while [ $i -lt 300 ]; do
        query $OUT/prom.n 'count_over_time(up[1h])'
        [ "$(value $OUT/prom.n)" -ge $((n0 + 2)) ] 2>/dev/null && return 0
        sleep 0.2
        i=$((i + 1))
    done
    echo "not scraped twice more than $n0 times: $(cat $OUT/prom.n)" >>$OUT/prom.waits
    return 1
}
newovl prom
$G mkfiles $D/lower/a 10 3000
$G mkfiles $D/lower/b 5 1000
mountovl
"$T" --metrics 127.0.0.1:29435 -o json >$OUT/prom1.out 2>$OUT/prom1.err &
TP=$!
wait_ready $OUT/prom1.err
/usr/bin/prometheus --config.file=$OUT/prom.yml --storage.tsdb.path=/tmp/promdb \
    --web.listen-address=127.0.0.1:9090 >$OUT/prom.log 2>&1 &
PP=$!
i=0
until fetch /dev/null $PURL/-/ready 2>/dev/null; do
    sleep 0.5
    i=$((i + 1))
    [ $i -gt 240 ] && break
done
scraped_twice
chown -R 1000:1000 $D/merged/a
sleep 0.2
scraped_twice
promql bytes1 'sum(copyup_trace_copied_bytes_total)'
promql count1 'sum(copyup_trace_copy_ups_total)'
promql hist1 'sum(copyup_trace_copy_up_duration_seconds_count)'
promql files1 'sum(copyup_trace_copy_ups_total{kind="file"})'
stop_tool $TP prom1
echo $? >$OUT/prom1.rc
# The tool again: its counters start from zero, which Prometheus sees as a reset.
"$T" --metrics 127.0.0.1:29435 -o json >$OUT/prom2.out 2>$OUT/prom2.err &
TP=$!
wait_ready $OUT/prom2.err
scraped_twice
chown -R 1000:1000 $D/merged/b
sleep 0.2
scraped_twice
promql bytes2 'sum(copyup_trace_copied_bytes_total)'
promql count2 'sum(copyup_trace_copy_ups_total)'
promql resets 'sum(resets(copyup_trace_copy_ups_total[10m]))'
promql bytes_resets 'sum(resets(copyup_trace_copied_bytes_total[10m]))'
promql up 'up'
stop_tool $TP prom2
echo $? >$OUT/prom2.rc

# --- series of containers that are gone expire, and their places go to new ones -------
# Series by container, at most 2: A (a directory and a file) and B get theirs, C folds
# into _other_. A's cgroup goes; a second after the tool has seen that (it looks every
# second; --metrics-expire-after 1s), D gets A's place.
# The containers' cgroups exist before the tool starts.
newovl exp
$G mkfiles $D/lower/f 4 100
mountovl
# in_container ID FILE: chown FILE from a process in docker container ID's cgroup.
in_container() {
    sh -c "echo \$\$ > /sys/fs/cgroup/system.slice/docker-$1.scope/cgroup.procs; exec chown 1000 $2"
}
CA=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
CB=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
CC=cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
CD=dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd
for c in $CA $CB $CC $CD; do mkdir -p /sys/fs/cgroup/system.slice/docker-$c.scope; done
"$T" --metrics 127.0.0.1:29435 --metrics-labels container --metrics-max-series 2 --metrics-expire-after 1s \
    -o json >$OUT/exp.out 2>$OUT/exp.err &
TP=$!
wait_ready $OUT/exp.err
in_container $CA $D/merged/f/f0
in_container $CB $D/merged/f/f1
in_container $CC $D/merged/f/f2
rmdir /sys/fs/cgroup/system.slice/docker-$CA.scope
sleep 3.5
in_container $CD $D/merged/f/f3
scraped_twice
promql exp 'copyup_trace_copy_ups_total'
fetch $OUT/exp.metrics $MURL/metrics || diag $TP >>$OUT/exp.hung
emit exp.metrics $OUT/exp.metrics
stop_tool $TP exp
echo $? >$OUT/exp.rc
for f in out err rc hung; do emit exp.$f $OUT/exp.$f; done
for c in $CB $CC $CD; do rmdir /sys/fs/cgroup/system.slice/docker-$c.scope; done

# --- containers made while tracing and gone at once --------------------------------------
# Three cgroups, each made, chowning one file and removed within a second: a scan (at most
# one a second) cannot see the second and third; the kernel's record of each mkdir names
# them.
newovl short
$G mkfiles $D/lower/f 3 100
mountovl
"$T" -o json >$OUT/short.out 2>$OUT/short.err &
TP=$!
wait_ready $OUT/short.err
for i in 1 2 3; do
    c=$(printf "e$i%.0s" $(seq 32))
    mkdir /sys/fs/cgroup/system.slice/docker-$c.scope
    in_container $c $D/merged/f/f$((i - 1))
    rmdir /sys/fs/cgroup/system.slice/docker-$c.scope
done
stop_tool $TP short
echo $? >$OUT/short.rc
for f in out err rc hung; do emit short.$f $OUT/short.$f; done
kill -TERM $PP
wait $PP
for f in prom.waits prom1.out prom1.err prom1.rc prom1.hung prom2.out prom2.err prom2.rc prom2.hung; do emit $f $OUT/$f; done
tail -5 $OUT/prom.log >$OUT/prom.logtail
emit prom.logtail $OUT/prom.logtail
