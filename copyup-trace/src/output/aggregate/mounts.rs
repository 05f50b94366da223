//! Copy-ups per overlay mount, with what the advice needs: the data that metadata-only
//! operations copied, and how many copy-ups came from chown. What to advise from them is
//! `advice`'s.

use std::sync::Arc;

use crate::{
    attribution::layers::OverlayInfo,
    events::decode::{CopyUp, Trigger},
    hashing::{IdMap, NameMap},
};

/// Triggers that change only metadata: their copy-up goes through `ovl_copy_up()` without
/// write-open flags, which `metacopy=on` makes metadata-only (`ovl_need_meta_copy_up`).
/// A size change (`truncate`), a write-open, and directory operations copy the data (or
/// have none).
pub const METADATA_ONLY: &[Trigger] = &[
    Trigger::Chown,
    Trigger::Lchown,
    Trigger::Fchown,
    Trigger::Chmod,
    Trigger::Utimes,
    Trigger::Setattr,
    Trigger::Setxattr,
    Trigger::Removexattr,
];

const CHOWN: &[Trigger] = &[Trigger::Chown, Trigger::Lchown, Trigger::Fchown];

/// What one overlay mount copied up.
#[derive(Clone)]
pub struct MountRow {
    /// The mount as last seen (rebuilt when remounted at the same place).
    pub info: Arc<OverlayInfo>,
    pub copy_ups: u64,
    pub bytes: u64,
    /// Copy-ups by a metadata-only trigger that copied data, and those bytes.
    pub meta_trigger_copy_ups: u64,
    pub meta_trigger_bytes: u64,
    /// Copy-ups that were metadata-only (`metacopy=on` at work).
    pub metacopies: u64,
    pub chown_copy_ups: u64,
    /// Copy-ups by a chown or chmod to what the file already had, and their bytes.
    pub noop_copy_ups: u64,
    pub noop_bytes: u64,
    /// Data bytes per metadata-only trigger, in `METADATA_ONLY` order.
    pub by_trigger: IdMap<Trigger, u64>,
}

/// Per-mount totals, by mount point.
#[derive(Default, Clone)]
pub struct MountTotals {
    rows: Vec<MountRow>,
    /// Row index by mount point.
    index: NameMap<Arc<[u8]>, usize>,
    /// The row last added to: copy-ups come in runs from one overlay, whose description
    /// (`OverlayInfo`) is shared, so a pointer comparison finds the row without a hash.
    last: usize,
}

impl MountTotals {
    pub fn add(&mut self, c: &CopyUp) {
        if c.waited {
            return;
        }
        let Some(info) = &c.overlay else { return };
        let i = match self.rows.get(self.last) {
            Some(row) if Arc::ptr_eq(&row.info, info) => self.last,
            _ => self.row_of(info),
        };
        self.last = i;
        let row = &mut self.rows[i];
        row.copy_ups += 1;
        row.bytes += c.bytes;
        row.metacopies += c.metacopy as u64;
        row.chown_copy_ups += CHOWN.contains(&c.trigger) as u64;
        if c.noop {
            row.noop_copy_ups += 1;
            row.noop_bytes += c.bytes;
        }
        if METADATA_ONLY.contains(&c.trigger) && !c.metacopy && c.bytes > 0 {
            row.meta_trigger_copy_ups += 1;
            row.meta_trigger_bytes += c.bytes;
            *row.by_trigger.entry(c.trigger).or_default() += c.bytes;
        }
    }

    /// The row of `info`'s mount point, made if new; a newer description of the mount
    /// (a reread mount table) replaces the older.
    fn row_of(&mut self, info: &Arc<OverlayInfo>) -> usize {
        let i = *self
            .index
            .entry(info.mount_point.clone())
            .or_insert_with(|| {
                self.rows.push(MountRow {
                    info: info.clone(),
                    copy_ups: 0,
                    bytes: 0,
                    meta_trigger_copy_ups: 0,
                    meta_trigger_bytes: 0,
                    metacopies: 0,
                    chown_copy_ups: 0,
                    noop_copy_ups: 0,
                    noop_bytes: 0,
                    by_trigger: IdMap::default(),
                });
                self.rows.len() - 1
            });
        self.rows[i].info = info.clone();
        i
    }

    /// By mount point.
    pub fn rows(&self) -> Vec<&MountRow> {
        let mut v: Vec<&MountRow> = self.rows.iter().collect();
        v.sort_by(|a, b| a.info.mount_point.cmp(&b.info.mount_point));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::aggregate::tests::cu;

    fn info(mount_point: &str) -> Arc<OverlayInfo> {
        Arc::new(OverlayInfo {
            mount_point: Arc::from(mount_point.as_bytes()),
            options: Default::default(),
            lowers: Vec::new(),
        })
    }

    /// Interleaved mounts each keep their own row, and a mount described anew (its
    /// table reread) keeps its row and takes the newer description.
    #[test]
    fn rows_by_mount_point() {
        let (a, b, a_again) = (info("/a"), info("/b"), info("/a"));
        let mut t = MountTotals::default();
        for (i, (m, bytes)) in [(&a, 1), (&a, 2), (&b, 4), (&a, 8), (&b, 16), (&a_again, 32)]
            .into_iter()
            .enumerate()
        {
            let mut c = cu(1, &format!("/f{i}"), bytes, 1);
            c.overlay = Some(m.clone());
            t.add(&c);
        }
        let rows: Vec<_> = t
            .rows()
            .iter()
            .map(|r| (&r.info.mount_point[..], r.copy_ups, r.bytes))
            .collect();
        assert_eq!(rows, vec![(&b"/a"[..], 4, 43), (&b"/b"[..], 2, 20)]);
        assert!(Arc::ptr_eq(&t.rows()[0].info, &a_again));
    }
}
