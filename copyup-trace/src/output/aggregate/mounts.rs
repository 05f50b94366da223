//! Copy-ups per overlay mount, with what the advice needs: the data that metadata-only
//! operations copied, and how many copy-ups came from chown. What to advise from them is
//! `advice`'s.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::{
    attribution::layers::OverlayInfo,
    events::decode::{CopyUp, Trigger},
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
    pub by_trigger: FxHashMap<Trigger, u64>,
}

/// Per-mount totals, by mount point.
#[derive(Default, Clone)]
pub struct MountTotals {
    rows: FxHashMap<Arc<[u8]>, MountRow>,
}

impl MountTotals {
    pub fn add(&mut self, c: &CopyUp) {
        if c.waited {
            return;
        }
        let Some(info) = &c.overlay else { return };
        let row = self
            .rows
            .entry(info.mount_point.clone())
            .or_insert_with(|| MountRow {
                info: info.clone(),
                copy_ups: 0,
                bytes: 0,
                meta_trigger_copy_ups: 0,
                meta_trigger_bytes: 0,
                metacopies: 0,
                chown_copy_ups: 0,
                noop_copy_ups: 0,
                noop_bytes: 0,
                by_trigger: FxHashMap::default(),
            });
        if !Arc::ptr_eq(&row.info, info) {
            row.info = info.clone();
        }
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

    /// By mount point.
    pub fn rows(&self) -> Vec<&MountRow> {
        let mut v: Vec<&MountRow> = self.rows.values().collect();
        v.sort_by(|a, b| a.info.mount_point.cmp(&b.info.mount_point));
        v
    }
}
