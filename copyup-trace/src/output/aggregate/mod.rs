//! Folds copy-up events into per-file, per-process, per-container and per-trigger
//! totals with latency distributions, in bounded memory: past a table's limit the
//! lightest rows fold into one row per table whose totals stay exact. Totals per layer
//! and per overlay mount are its `layers` and `mounts`.

pub mod layers;
pub mod mounts;

use hashbrown::HashTable;

use serde::Serialize;

use std::sync::Arc;

use crate::{
    attribution::cgroups::Container,
    cli::SortKey,
    events::decode::{CopyUp, Kind, OpDone, Trigger},
    hashing::{IdMap as HashMap, NameHasher, NameMap},
    output::hist::{Latencies, Log2Hist, Percentiles},
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
    /// Copy-ups by a chown or chmod to the owner and mode the file already had, and
    /// their bytes: copied for nothing.
    pub noop_copy_ups: u64,
    pub noop_bytes: u64,
}

impl Stats {
    fn merge(&mut self, o: &Stats) {
        self.copy_ups += o.copy_ups;
        self.metacopies += o.metacopies;
        self.bytes += o.bytes;
        self.copy_ns += o.copy_ns;
        self.max_copy_ns = self.max_copy_ns.max(o.max_copy_ns);
        self.data_ns += o.data_ns;
        self.errors += o.errors;
        self.waits += o.waits;
        self.noop_copy_ups += o.noop_copy_ups;
        self.noop_bytes += o.noop_bytes;
    }

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
        if c.noop {
            self.noop_copy_ups += 1;
            self.noop_bytes += c.bytes;
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
    /// Exact totals since the row was (last) created: a path folded away earlier has
    /// its earlier copy-ups in the folded row.
    pub stats: Stats,
    /// Weight of the heaviest row folded before this one was created: the most this
    /// path could have had folded away (space-saving's error bound).
    pub floor: u64,
}

#[derive(Clone)]
pub struct ProcRow {
    pub pid: u32,
    /// Comm at the process's first copy-up.
    pub comm: Vec<u8>,
    pub row: Row,
    pub floor: u64,
}

#[derive(Clone)]
pub struct ContainerRow {
    /// Container name, else its id, else cgroup path, else the numeric cgroup id.
    pub name: String,
    /// Runtime that named the container, or "" for a plain cgroup.
    pub runtime: &'static str,
    /// The container with what its runtime said of it; `None` for a plain cgroup.
    pub container: Option<Arc<Container>>,
    pub row: Row,
    pub floor: u64,
}

/// Copy-ups by the image of the containers that made them.
#[derive(Clone)]
pub struct ImageRow {
    /// The image's name, else its id; "" for copy-ups outside containers of known image.
    pub image: String,
    pub image_id: Option<String>,
    /// Containers (cgroups) of this image that copied up.
    pub containers: u64,
    pub row: Row,
}

/// How many rows each table may hold. When one is full, its lighter half folds into the
/// table's folded row. A row weighs its sort key plus its `floor`, as in space-saving:
/// a new row starts as heavy as the heaviest row folded so far, so a path that keeps
/// coming back outweighs the one-off paths that arrived after it. Folding in batches of
/// half a table costs O(1) per row.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub files: usize,
    /// Process and container rows each carry a latency histogram (up to ~20 KiB).
    pub processes: usize,
    pub containers: usize,
    /// What "heaviest" means: the report's sort key.
    pub by: SortKey,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            files: 16_384,
            processes: 512,
            containers: 512,
            by: SortKey::Time,
        }
    }
}

/// The rows a table folded away: how many times a row was folded, and their exact
/// totals together.
#[derive(Clone, Default)]
pub struct Folded {
    pub rows: u64,
    pub row: Row,
}

/// Folds the lightest rows of `v` (their weight: `weigh`) until `keep` are left: those
/// heavier than the `keep`-th heaviest stay, and as many of the rows that weigh the same
/// as it as fit. Returns the heaviest weight folded.
fn fold_lightest<T>(
    weights: &mut Vec<u64>,
    keep: usize,
    weigh: impl Fn(&T) -> u64,
    mut retain: impl FnMut(&mut dyn FnMut(&mut T) -> bool),
    mut fold: impl FnMut(&T),
) -> u64 {
    if weights.len() <= keep || keep == 0 {
        return 0;
    }
    let (_, &mut threshold, _) = weights.select_nth_unstable_by(keep - 1, |a, b| b.cmp(a));
    let above = weights.iter().filter(|&&w| w > threshold).count();
    let mut ties_kept = keep - above;
    let mut heaviest_folded = 0;
    retain(&mut |row: &mut T| {
        let w = weigh(row);
        let stay = w > threshold || (w == threshold && ties_kept > 0);
        if w == threshold && stay {
            ties_kept -= 1;
        }
        if !stay {
            heaviest_folded = heaviest_folded.max(w);
            fold(row);
        }
        stay
    });
    weights.clear();
    heaviest_folded
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

pub struct Aggregate {
    limits: Limits,
    /// Keyed by `FileRow::path`: a table rather than a map, so that the path is stored
    /// once and looked up from a reused buffer without an allocation.
    files: HashTable<FileRow>,
    /// Seeded: paths are named by the traced system.
    file_hasher: NameHasher,
    /// The display path of the copy-up being added.
    path_buf: Vec<u8>,
    procs: HashMap<u32, ProcRow>,
    /// By cgroup id: one cgroup is one container.
    containers: HashMap<u64, ContainerRow>,
    triggers: HashMap<Trigger, TriggerRow>,
    /// By lower layer (`--by layer`) and by overlay mount (the advice).
    pub layers: layers::LayerTotals,
    pub mounts: mounts::MountTotals,
    /// Totals of every copy-up; their latency distribution is the triggers' merged
    /// (`total_row`), rather than a fourth histogram record per event.
    pub total: Stats,
    /// What the tables folded away (`Limits`), and the heaviest weight each folded,
    /// which new rows start from.
    files_folded: Folded,
    procs_folded: Folded,
    containers_folded: Folded,
    floors: [u64; 3],
    /// Scratch for the weights of a table being folded.
    weights: Vec<u64>,
}

impl Default for Aggregate {
    fn default() -> Self {
        Self::new(Limits::default())
    }
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
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            files: HashTable::new(),
            file_hasher: NameHasher::default(),
            path_buf: Vec::new(),
            procs: HashMap::default(),
            containers: HashMap::default(),
            triggers: HashMap::default(),
            layers: Default::default(),
            mounts: Default::default(),
            total: Stats::default(),
            files_folded: Folded::default(),
            procs_folded: Folded::default(),
            containers_folded: Folded::default(),
            floors: [0; 3],
            weights: Vec::new(),
        }
    }

    pub fn add(&mut self, c: &CopyUp) {
        self.make_room(c);
        self.total.add(c);
        self.layers.add(c);
        self.mounts.add(c);
        let path = match c.mount {
            Some(_) => {
                c.display_path_into(&mut self.path_buf);
                &self.path_buf[..]
            }
            None => &c.path[..],
        };
        let hash = self.file_hasher.hash_one(path);
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
                        floor: self.floors[0],
                    },
                    |f| self.file_hasher.hash_one(&f.path[..]),
                );
            }
        }
        self.procs
            .entry(c.pid)
            .or_insert_with(|| ProcRow {
                pid: c.pid,
                comm: c.comm.clone(),
                row: Row::default(),
                floor: self.floors[1],
            })
            .row
            .add(c);
        self.containers
            .entry(c.cgroup_id)
            .or_insert_with(|| {
                let (name, runtime) = match (&c.container, &c.cgroup) {
                    (Some(ct), _) => (ct.label().to_string(), ct.runtime),
                    (None, Some(path)) => (path.to_string(), ""),
                    (None, None) => (format!("cgroup id {}", c.cgroup_id), ""),
                };
                ContainerRow {
                    name,
                    runtime,
                    container: c.container.clone(),
                    row: Row::default(),
                    floor: self.floors[2],
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

    /// Folds the lighter half of any table that `c` would grow past its limit.
    fn make_room(&mut self, c: &CopyUp) {
        let by = self.limits.by;
        if self.files.len() >= self.limits.files {
            let keep = self.limits.files / 2;
            self.weights
                .extend(self.files.iter().map(|f| f.floor + f.stats.sort_key(by)));
            let folded = &mut self.files_folded;
            let floor = fold_lightest(
                &mut self.weights,
                keep,
                |f: &FileRow| f.floor + f.stats.sort_key(by),
                |keep| self.files.retain(|f| keep(f)),
                |f| {
                    folded.rows += 1;
                    folded.row.stats.merge(&f.stats);
                },
            );
            self.floors[0] = self.floors[0].max(floor);
        }
        if self.procs.len() >= self.limits.processes && !self.procs.contains_key(&c.pid) {
            let keep = self.limits.processes / 2;
            self.weights.extend(
                self.procs
                    .values()
                    .map(|p| p.floor + p.row.stats.sort_key(by)),
            );
            let folded = &mut self.procs_folded;
            let floor = fold_lightest(
                &mut self.weights,
                keep,
                |p: &ProcRow| p.floor + p.row.stats.sort_key(by),
                |keep| self.procs.retain(|_, p| keep(p)),
                |p| {
                    folded.rows += 1;
                    folded.row.stats.merge(&p.row.stats);
                    folded.row.latency.merge(&p.row.latency);
                },
            );
            self.floors[1] = self.floors[1].max(floor);
        }
        if self.containers.len() >= self.limits.containers
            && !self.containers.contains_key(&c.cgroup_id)
        {
            let keep = self.limits.containers / 2;
            self.weights.extend(
                self.containers
                    .values()
                    .map(|r| r.floor + r.row.stats.sort_key(by)),
            );
            let folded = &mut self.containers_folded;
            let floor = fold_lightest(
                &mut self.weights,
                keep,
                |r: &ContainerRow| r.floor + r.row.stats.sort_key(by),
                |keep| self.containers.retain(|_, r| keep(r)),
                |r| {
                    folded.rows += 1;
                    folded.row.stats.merge(&r.row.stats);
                    folded.row.latency.merge(&r.row.latency);
                },
            );
            self.floors[2] = self.floors[2].max(floor);
        }
    }

    /// The file rows folded away: their count and exact totals (no latency
    /// distribution: file rows keep none).
    pub fn files_folded(&self) -> &Folded {
        &self.files_folded
    }

    pub fn processes_folded(&self) -> &Folded {
        &self.procs_folded
    }

    pub fn containers_folded(&self) -> &Folded {
        &self.containers_folded
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

    /// The container rows folded by image (name and id): made when asked, so that the
    /// per-copy-up work stays one container update.
    pub fn images(&self, by: SortKey) -> Vec<ImageRow> {
        let mut images: NameMap<(String, Option<String>), ImageRow> = NameMap::default();
        for c in self.containers.values() {
            let ct = c.container.as_deref();
            let image_id = ct.and_then(|k| k.image_id.clone());
            let image = ct
                .and_then(|k| k.image.clone())
                .or_else(|| image_id.clone())
                .unwrap_or_default();
            let r = images
                .entry((image.clone(), image_id.clone()))
                .or_insert_with(|| ImageRow {
                    image,
                    image_id,
                    containers: 0,
                    row: Row::default(),
                });
            r.containers += 1;
            r.row.stats.merge(&c.row.stats);
            r.row.latency.merge(&c.row.latency);
        }
        let rows: Vec<ImageRow> = images.into_values().collect();
        sorted(
            rows.iter().collect(),
            by,
            |r| &r.row.stats,
            |a, b| (&a.image, &a.image_id).cmp(&(&b.image, &b.image_id)),
        )
        .into_iter()
        .cloned()
        .collect()
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
            noop: false,
            nest: 0,
            size: bytes,
            dev: 0,
            cause_start_ns: 0,
            mount: None,
            cgroup: None,
            container: None,
            overlay: None,
            layer: None,
            data_layer: None,
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
    fn images_fold_containers() {
        let mut a = Aggregate::default();
        let ct = |id: &str, name: &str, image: &str| {
            Some(Arc::new(Container {
                runtime: "podman",
                id: id.into(),
                name: Some(name.into()),
                image: Some(image.into()),
                image_id: Some(format!("{image}-id")),
                ..Default::default()
            }))
        };
        for (cg, bytes, container) in [
            (1, 10, ct("a", "web1", "app:1")),
            (2, 20, ct("b", "web2", "app:1")),
            (2, 5, ct("b", "web2", "app:1")),
            (3, 7, ct("c", "db", "db:2")),
            (4, 1, None),
        ] {
            let mut c = cu(1, "/x", bytes, bytes * 10);
            c.cgroup_id = cg;
            c.container = container;
            a.add(&c);
        }
        let got: Vec<_> = a
            .images(SortKey::Bytes)
            .into_iter()
            .map(|r| {
                (
                    r.image,
                    r.image_id,
                    r.containers,
                    r.row.stats.copy_ups,
                    r.row.stats.bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("app:1".into(), Some("app:1-id".into()), 2, 3, 35),
                ("db:2".into(), Some("db:2-id".into()), 1, 1, 7),
                (String::new(), None, 1, 1, 1),
            ]
        );
        let names: Vec<_> = a
            .containers(SortKey::Bytes)
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, vec!["web2", "web1", "db", "cgroup id 4"]);
    }

    #[test]
    fn containers_and_triggers() {
        let mut a = Aggregate::default();
        let mut c1 = cu(1, "/x", 10, 3_000);
        c1.container = Some(std::sync::Arc::new(
            crate::attribution::cgroups::Container {
                runtime: "docker",
                id: "abc".into(),
                ..Default::default()
            },
        ));
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

    /// Sums a table's kept rows and its folded row.
    fn sum<'a>(rows: impl Iterator<Item = &'a Stats>, folded: &Folded) -> Stats {
        let mut s = folded.row.stats;
        for r in rows {
            s.merge(r);
        }
        s
    }

    #[test]
    fn folding_keeps_totals_exact_and_the_heavy_rows() {
        let limits = Limits {
            files: 64,
            processes: 8,
            containers: 8,
            by: SortKey::Bytes,
        };
        let mut a = Aggregate::new(limits);
        // Three heavy paths, pids and cgroups recur among 20,000 one-off ones.
        for i in 0..20_000u64 {
            let heavy = i % 50 == 0;
            let (path, pid, cg) = if heavy {
                let h = i / 50 % 3;
                (format!("/heavy{h}"), 1 + h as u32, 1 + h)
            } else {
                (format!("/f{i}"), 100 + i as u32, 100 + i)
            };
            let mut c = cu(pid, &path, if heavy { 1 << 20 } else { i % 4096 }, i);
            c.cgroup_id = cg;
            c.waited = !heavy && i % 97 == 0;
            c.ret = if i % 89 == 0 { -5 } else { 0 };
            a.add(&c);
            assert!(a.files.len() <= limits.files);
            assert!(a.procs.len() <= limits.processes);
            assert!(a.containers.len() <= limits.containers);
        }
        let t = a.total;
        assert_eq!(t.copy_ups + t.waits, 20_000);
        let files = sum(
            a.files(SortKey::Bytes).iter().map(|f| &f.stats),
            a.files_folded(),
        );
        let procs = sum(
            a.processes(SortKey::Bytes).iter().map(|p| &p.row.stats),
            a.processes_folded(),
        );
        let conts = sum(
            a.containers(SortKey::Bytes).iter().map(|c| &c.row.stats),
            a.containers_folded(),
        );
        for s in [files, procs, conts] {
            assert_eq!(s, t);
        }
        assert!(a.files_folded().rows > 19_000, "{}", a.files_folded().rows);
        // The folded rows' latencies are kept too: every non-waited copy-up once.
        let lat = a.processes_folded().row.latency.len()
            + a.processes(SortKey::Bytes)
                .iter()
                .map(|p| p.row.latency.len())
                .sum::<u64>();
        assert_eq!(lat, t.copy_ups);

        // The heavy rows are the top three of each table, with every copy-up of theirs:
        // 134 / 133 / 133 of the 400 heavy ones (i % 50 == 0), none folded away.
        let top: Vec<_> = a.files(SortKey::Bytes)[..3]
            .iter()
            .map(|f| (f.path.clone(), f.stats.copy_ups + f.stats.waits))
            .collect();
        let mut want = vec![
            (b"/heavy0".to_vec(), 134),
            (b"/heavy1".to_vec(), 133),
            (b"/heavy2".to_vec(), 133),
        ];
        let mut got = top.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        let pids: Vec<_> = a.processes(SortKey::Bytes)[..3]
            .iter()
            .map(|p| p.pid)
            .collect();
        assert!(pids.iter().all(|p| (1..=3).contains(p)), "{pids:?}");
        assert!(a.containers(SortKey::Bytes).len() <= 8);
    }

    #[test]
    fn folding_equal_weights_still_frees_room() {
        let mut a = Aggregate::new(Limits {
            files: 10,
            processes: 10,
            containers: 10,
            by: SortKey::Count,
        });
        for i in 0..1000u32 {
            a.add(&cu(1, &format!("/f{i}"), 1, 1));
            assert!(a.files.len() <= 10);
        }
        assert_eq!(a.total.copy_ups, 1000);
        let kept = a.files(SortKey::Count).len() as u64;
        assert_eq!(a.files_folded().row.stats.copy_ups + kept, 1000);
        assert_eq!(a.files_folded().rows + kept, 1000);
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
