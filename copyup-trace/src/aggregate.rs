//! Folds copy-up events into per-file and per-process totals.

use std::collections::HashMap;

use serde::Serialize;

use crate::decode::{CopyUp, Kind, OpDone, Trigger};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Copy-ups done by this key (waits on another thread's copy-up not included).
    pub copy_ups: u64,
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
        self.bytes += c.bytes;
        self.copy_ns += c.copy_ns;
        self.max_copy_ns = self.max_copy_ns.max(c.copy_ns);
        self.data_ns += c.data_ns;
        if c.ret != 0 {
            self.errors += 1;
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileRow {
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Trigger of the first copy-up of this path.
    pub trigger: Trigger,
    pub stats: Stats,
}

#[derive(Debug, Clone)]
pub struct ProcRow {
    pub pid: u32,
    /// Comm at the process's first copy-up.
    pub comm: Vec<u8>,
    pub stats: Stats,
}

/// Syscalls/operations that caused copy-ups, by trigger: how long the caller waited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpStats {
    pub calls: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

#[derive(Debug, Default)]
pub struct Aggregate {
    files: HashMap<Vec<u8>, FileRow>,
    procs: HashMap<u32, ProcRow>,
    ops: HashMap<Trigger, OpStats>,
    pub total: Stats,
}

impl Aggregate {
    pub fn add(&mut self, c: &CopyUp) {
        self.total.add(c);
        self.files
            .entry(c.path.clone())
            .or_insert_with(|| FileRow {
                path: c.path.clone(),
                kind: c.kind,
                trigger: c.trigger,
                stats: Stats::default(),
            })
            .stats
            .add(c);
        self.procs
            .entry(c.pid)
            .or_insert_with(|| ProcRow {
                pid: c.pid,
                comm: c.comm.clone(),
                stats: Stats::default(),
            })
            .stats
            .add(c);
    }

    pub fn add_op(&mut self, d: &OpDone) {
        let s = self.ops.entry(d.trigger).or_default();
        s.calls += 1;
        s.total_ns += d.duration_ns;
        s.max_ns = s.max_ns.max(d.duration_ns);
    }

    pub fn op_stats(&self, t: Trigger) -> Option<OpStats> {
        self.ops.get(&t).copied()
    }

    /// Files by total copy-up time, longest first; ties by path.
    pub fn files(&self) -> Vec<&FileRow> {
        let mut v: Vec<_> = self.files.values().collect();
        v.sort_by(|a, b| {
            b.stats
                .copy_ns
                .cmp(&a.stats.copy_ns)
                .then_with(|| a.path.cmp(&b.path))
        });
        v
    }

    /// Processes by total copy-up time, longest first; ties by pid.
    pub fn processes(&self) -> Vec<&ProcRow> {
        let mut v: Vec<_> = self.procs.values().collect();
        v.sort_by(|a, b| {
            b.stats
                .copy_ns
                .cmp(&a.stats.copy_ns)
                .then(a.pid.cmp(&b.pid))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cu(pid: u32, path: &str, bytes: u64, ns: u64) -> CopyUp {
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
            metacopy: false,
            size: bytes,
            dev: 0,
            cause_start_ns: 0,
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

        assert_eq!(a.total.copy_ups, 4);
        assert_eq!(a.total.bytes, 100 + (8 << 20) + 4);
        assert_eq!(a.total.copy_ns, 103_000);
        assert_eq!(a.total.max_copy_ns, 90_000);
        assert_eq!(a.total.errors, 1);
        assert_eq!(a.total.waits, 1);

        let files: Vec<_> = a.files().iter().map(|f| f.path.clone()).collect();
        assert_eq!(files, vec![b"/b".to_vec(), b"/c".to_vec(), b"/a".to_vec()]);
        let c = a.files()[1].stats;
        assert_eq!((c.copy_ups, c.bytes, c.copy_ns, c.errors), (2, 4, 8_000, 1));

        let pids: Vec<_> = a.processes().iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![10, 11, 12]);
        assert_eq!(a.processes()[2].stats.copy_ups, 0);
        assert_eq!(a.processes()[2].stats.waits, 1);
    }
}
