//! Folds copy-up events into per-file, per-process, per-container and per-trigger
//! totals with latency distributions.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap as HashMap};

use serde::Serialize;

use crate::{
    cli::SortKey,
    decode::{CopyUp, Kind, OpDone, Trigger},
    hist::{Latencies, Log2Hist, Percentiles},
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Copy-ups done by this key (waits on another thread's copy-up not included).
    pub copy_ups: u64,
    /// Of those, metadata-only (`metacopy=on`).
    pub metacopies: u64,
    pub bytes: u64,
    /// Sum of whole copy-up times.
    pub copy_ns: u64,
    pub max_copy_ns: u64,
    pub data_ns: u64,
    /// Copy-ups that returned an error.
    pub errors: u64,
    /// Times a thread found another thread's copy-up in progress and waited for it.
    pub waits: u64,
}

impl Stats {
    fn add(&mut self, c: &CopyUp) {
        if c.waited {
            self.waits += 1;
            return;
        }
        self.copy_ups += 1;
        self.metacopies += c.metacopy as u64;
        self.bytes += c.bytes;
        self.copy_ns += c.copy_ns;
        self.max_copy_ns = self.max_copy_ns.max(c.copy_ns);
        self.data_ns += c.data_ns;
        if c.ret != 0 {
            self.errors += 1;
        }
    }
}

/// Totals plus the copy-up latency distribution of one key.
#[derive(Clone, Default)]
pub struct Row {
    pub stats: Stats,
    pub latency: Latencies,
}

impl Row {
    fn add(&mut self, c: &CopyUp) {
        self.stats.add(c);
        if !c.waited {
            self.latency.record(c.copy_ns);
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        self.latency.summary()
    }
}

impl Stats {
    fn sort_key(&self, by: SortKey) -> u64 {
        match by {
            SortKey::Time => self.copy_ns,
            SortKey::Bytes => self.bytes,
            SortKey::Count => self.copy_ups + self.waits,
        }
    }
}

/// A file is usually copied up once: totals only, no latency distribution (a
/// histogram per file would cost memory per path on a `chown -R` over millions).
#[derive(Clone)]
pub struct FileRow {
    /// Absolute when the overlay's mount point is known, else inside the overlay.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Trigger of the first copy-up of this path.
    pub trigger: Trigger,
    pub stats: Stats,
}

#[derive(Clone)]
pub struct ProcRow {
    pub pid: u32,
    /// Comm at the process's first copy-up.
    pub comm: Vec<u8>,
    pub row: Row,
}

#[derive(Clone)]
pub struct ContainerRow {
    /// Container id, else cgroup path, else the numeric cgroup id.
    pub name: String,
    /// Runtime that named the container, or "" for a plain cgroup.
    pub runtime: &'static str,
    pub row: Row,
}

/// Syscalls/operations that caused copy-ups: how long the caller waited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpStats {
    pub calls: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

#[derive(Clone, Default)]
pub struct TriggerRow {
    pub row: Row,
    /// Copy-up latency in microseconds, log2 buckets.
    pub hist_us: Log2Hist,
    pub calls: OpStats,
}

#[derive(Default)]
pub struct Aggregate {
    /// Keyed by `FileRow::path`: a table rather than a map, so that the path is stored
    /// once and looked up from a reused buffer without an allocation.
    files: HashTable<FileRow>,
    /// The display path of the copy-up being added.
    path_buf: Vec<u8>,
    procs: HashMap<u32, ProcRow>,
    /// By cgroup id: one cgroup is one container.
    containers: HashMap<u64, ContainerRow>,
    triggers: HashMap<Trigger, TriggerRow>,
    /// Totals of every copy-up; their latency distribution is the triggers' merged
    /// (`total_row`), rather than a fourth histogram record per event.
    pub total: Stats,
}

fn sorted<T>(
    rows: Vec<&T>,
    by: SortKey,
    stats: impl Fn(&T) -> &Stats,
    tie: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<&T> {
    let mut v = rows;
    v.sort_by(|a, b| {
        stats(b)
            .sort_key(by)
            .cmp(&stats(a).sort_key(by))
            .then_with(|| tie(a, b))
    });
    v
}

impl Aggregate {
    pub fn add(&mut self, c: &CopyUp) {
        self.total.add(c);
        let path = match c.mount {
            Some(_) => {
                c.display_path_into(&mut self.path_buf);
                &self.path_buf[..]
            }
            None => &c.path[..],
        };
        let hash = FxBuildHasher.hash_one(path);
        // A new path pays one allocation (its stored copy), a repeated path none.
        match self.files.find_mut(hash, |f| f.path == path) {
            Some(f) => f.stats.add(c),
            None => {
                let mut stats = Stats::default();
                stats.add(c);
                self.files.insert_unique(
                    hash,
                    FileRow {
                        path: path.to_vec(),
                        kind: c.kind,
                        trigger: c.trigger,
                        stats,
                    },
                    |f| FxBuildHasher.hash_one(&f.path[..]),
                );
            }
        }
        self.procs
            .entry(c.pid)
            .or_insert_with(|| ProcRow {
                pid: c.pid,
                comm: c.comm.clone(),
                row: Row::default(),
            })
            .row
            .add(c);
        self.containers
            .entry(c.cgroup_id)
            .or_insert_with(|| {
                let (name, runtime) = match (&c.container, &c.cgroup) {
                    (Some(ct), _) => (ct.id.clone(), ct.runtime),
                    (None, Some(path)) => (path.to_string(), ""),
                    (None, None) => (format!("cgroup id {}", c.cgroup_id), ""),
                };
                ContainerRow {
                    name,
                    runtime,
                    row: Row::default(),
                }
            })
            .row
            .add(c);
        let t = self.triggers.entry(c.trigger).or_default();
        t.row.add(c);
        if !c.waited {
            t.hist_us.add(c.copy_ns / 1000);
        }
    }

    pub fn add_op(&mut self, d: &OpDone) {
        let s = &mut self.triggers.entry(d.trigger).or_default().calls;
        s.calls += 1;
        s.total_ns += d.duration_ns;
        s.max_ns = s.max_ns.max(d.duration_ns);
    }

    pub fn is_empty(&self) -> bool {
        self.total.copy_ups == 0 && self.total.waits == 0
    }

    /// Totals with the latency distribution of all copy-ups.
    pub fn total_row(&self) -> Row {
        let mut row = Row {
            stats: self.total,
            latency: Latencies::default(),
        };
        for t in self.triggers.values() {
            row.latency.merge(&t.row.latency);
        }
        row
    }

    pub fn files(&self, by: SortKey) -> Vec<&FileRow> {
        sorted(
            self.files.iter().collect(),
            by,
            |f| &f.stats,
            |a, b| a.path.cmp(&b.path),
        )
    }

    pub fn processes(&self, by: SortKey) -> Vec<&ProcRow> {
        sorted(
            self.procs.values().collect(),
            by,
            |p| &p.row.stats,
            |a, b| a.pid.cmp(&b.pid),
        )
    }

    pub fn containers(&self, by: SortKey) -> Vec<&ContainerRow> {
        sorted(
            self.containers.values().collect(),
            by,
            |c| &c.row.stats,
            |a, b| a.name.cmp(&b.name),
        )
    }

    /// Triggers in `Trigger::ALL` order of those seen.
    pub fn triggers(&self) -> Vec<(Trigger, &TriggerRow)> {
        Trigger::ALL
            .iter()
            .filter_map(|t| self.triggers.get(t).map(|r| (*t, r)))
            .collect()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn cu(pid: u32, path: &str, bytes: u64, ns: u64) -> CopyUp {
        CopyUp {
            start_ns: 0,
            copy_ns: ns,
            data_ns: ns / 2,
            bytes,
            cgroup_id: 1,
            pid,
            tid: pid,
            ppid: 1,
            ret: 0,
            comm: b"chown".to_vec(),
            trigger: Trigger::Chown,
            kind: Kind::File,
            path: path.as_bytes().to_vec(),
            path_truncated: false,
            filename: None,
            waited: false,
            return_missed: false,
            metacopy: false,
            nest: 0,
            size: bytes,
            dev: 0,
            cause_start_ns: 0,
            mount: None,
            cgroup: None,
            container: None,
            kstack_id: -1,
            ustack_id: -1,
        }
    }

    #[test]
    fn totals_and_ordering() {
        let mut a = Aggregate::default();
        a.add(&cu(10, "/a", 100, 5_000));
        a.add(&cu(10, "/b", 8 << 20, 90_000));
        a.add(&cu(11, "/c", 0, 7_000));
        let mut failed = cu(11, "/c", 4, 1_000);
        failed.ret = -28;
        a.add(&failed);
        let mut waited = cu(12, "/b", 0, 50_000);
        waited.waited = true;
        a.add(&waited);

        let t = a.total;
        assert_eq!(t.copy_ups, 4);
        assert_eq!(t.bytes, 100 + (8 << 20) + 4);
        assert_eq!(t.copy_ns, 103_000);
        assert_eq!(t.max_copy_ns, 90_000);
        assert_eq!(t.errors, 1);
        assert_eq!(t.waits, 1);

        let files: Vec<_> = a
            .files(SortKey::Time)
            .iter()
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(files, vec![b"/b".to_vec(), b"/c".to_vec(), b"/a".to_vec()]);
        let c = a.files(SortKey::Time)[1].stats;
        assert_eq!((c.copy_ups, c.bytes, c.copy_ns, c.errors), (2, 4, 8_000, 1));
        let by_count: Vec<_> = a
            .files(SortKey::Count)
            .iter()
            .map(|f| f.path.clone())
            .collect();
        // /b: 1 copy-up + 1 wait, /c: 2 copy-ups, tie broken by path.
        assert_eq!(
            by_count,
            vec![b"/b".to_vec(), b"/c".to_vec(), b"/a".to_vec()]
        );
        let by_bytes: Vec<_> = a
            .files(SortKey::Bytes)
            .iter()
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(
            by_bytes,
            vec![b"/b".to_vec(), b"/a".to_vec(), b"/c".to_vec()]
        );

        let pids: Vec<_> = a.processes(SortKey::Time).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![10, 11, 12]);
        assert_eq!(a.processes(SortKey::Time)[2].row.stats.waits, 1);
    }

    #[test]
    fn containers_and_triggers() {
        let mut a = Aggregate::default();
        let mut c1 = cu(1, "/x", 10, 3_000);
        c1.container = Some(std::sync::Arc::new(crate::cgroups::Container {
            runtime: "docker",
            id: "abc".into(),
        }));
        c1.cgroup = Some("/system.slice/docker-abc.scope".into());
        c1.cgroup_id = 10;
        let mut c2 = cu(2, "/y", 20, 1_500);
        c2.cgroup = Some("/user.slice".into());
        c2.cgroup_id = 20;
        c2.trigger = Trigger::Chmod;
        a.add(&c1);
        a.add(&c2);
        a.add(&cu(3, "/z", 1, 1));
        let names: Vec<_> = a
            .containers(SortKey::Time)
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, vec!["abc", "/user.slice", "cgroup id 1"]);
        assert_eq!(a.containers(SortKey::Time)[0].runtime, "docker");
        let trig: Vec<_> = a
            .triggers()
            .iter()
            .map(|(t, r)| (*t, r.row.stats.copy_ups))
            .collect();
        assert_eq!(trig, vec![(Trigger::Chown, 2), (Trigger::Chmod, 1)]);
        // 3 µs -> bucket [2,4); 0 µs (1 ns) -> bucket [0,1).
        let chown = a.triggers()[0].1;
        assert_eq!(chown.hist_us.count(), 2);
        a.add_op(&OpDone {
            trigger: Trigger::Chmod,
            start_ns: 0,
            duration_ns: 9_000,
            pid: 2,
            tid: 2,
            copy_ups: 1,
            ret: 0,
        });
        assert_eq!(
            a.triggers()[1].1.calls,
            OpStats {
                calls: 1,
                total_ns: 9_000,
                max_ns: 9_000
            }
        );
    }

    /// The total distribution is the triggers' merged: the same as recording every
    /// copy-up once more.
    #[test]
    fn total_latency_merges_the_triggers() {
        let mut a = Aggregate::default();
        let mut direct = Latencies::default();
        for i in 1..=300u64 {
            let mut c = cu(1, "/f", 1, i * 1000);
            c.trigger = [Trigger::Chown, Trigger::Chmod, Trigger::OpenWrite][(i % 3) as usize];
            c.waited = i % 50 == 0;
            if !c.waited {
                direct.record(c.copy_ns);
            }
            a.add(&c);
        }
        let total = a.total_row();
        assert_eq!(total.stats, a.total);
        assert_eq!(total.latency.len(), 294);
        assert_eq!(total.percentiles(), direct.summary());
        assert_eq!(total.percentiles().max_ns, 299_000);
    }

    #[test]
    fn percentiles_per_row() {
        let mut a = Aggregate::default();
        for i in 1..=100u64 {
            a.add(&cu(1, "/f", 1, i * 1000));
        }
        let p = a.processes(SortKey::Time)[0].row.percentiles();
        // hdrhistogram keeps 2 significant digits: a percentile may read up to 1% high.
        let near = |got: u64, want: u64| got >= want && got <= want + want / 100;
        assert!(near(p.p50_ns, 50_000), "{p:?}");
        assert!(near(p.p90_ns, 90_000), "{p:?}");
        assert!(near(p.p99_ns, 99_000), "{p:?}");
        assert_eq!(p.max_ns, 100_000);
    }
}
