//! Copy-ups and bytes per lower layer (`--by layer`): a copy-up counts where it copied
//! from, its bytes where its data was. Which layer that is is the kernel side's answer
//! (`attribution::layers` names it); showing the rows is `render::layers`'.

use std::sync::Arc;

use serde::Serialize;

use crate::{attribution::layers::Layer, escape::escape, events::decode::CopyUp, hashing::NameMap};

/// Copy-ups per layer directory, for `--by layer`: one row per directory even when
/// several mounts stack it (an image layer shared by containers).
#[derive(Default, Clone)]
pub struct LayerTotals {
    rows: NameMap<Vec<u8>, LayerRow>,
    /// Copy-ups whose layer is unknown: no mount table, or a kernel whose lower stack
    /// the kernel side cannot read.
    pub unknown: LayerCount,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerCount {
    pub copy_ups: u64,
    pub bytes: u64,
}

#[derive(Clone)]
pub struct LayerRow {
    /// The layer as the first mount seen with it lists it.
    pub layer: Arc<Layer>,
    pub count: LayerCount,
}

impl LayerRow {
    /// The layer's size and the share of it copied up; walks the layer unless that is
    /// done or under way, and waits for the walk.
    pub fn size_and_share(&self) -> (Option<u64>, Option<f64>) {
        self.layer.start_sizing();
        let size = self.layer.size.wait();
        let share = size
            .filter(|&s| s > 0)
            .map(|s| self.count.bytes as f64 / s as f64);
        (size, share)
    }

    /// The image step that created the layer, escaped.
    pub fn created_by(&self) -> Option<String> {
        self.layer.created_by.get().map(|s| escape(s.as_bytes()))
    }

    /// The runtime's name of the layer, else its directory.
    pub fn name(&self) -> String {
        match &self.layer.runtime {
            Some(r) => format!("{} {}", r.store, r.id),
            None => escape(&self.layer.resolved),
        }
    }
}

impl LayerTotals {
    /// A copy-up counts in the row of the layer it copied from; its bytes in the row of
    /// the layer that held its data (another one for a metacopy file).
    pub fn add(&mut self, c: &CopyUp) {
        if c.waited {
            return;
        }
        self.count(c.lower_layer()).copy_ups += 1;
        self.count(c.data_source_layer()).bytes += c.bytes;
    }

    fn count(&mut self, layer: Option<&Arc<Layer>>) -> &mut LayerCount {
        match layer {
            Some(layer) => {
                &mut self
                    .rows
                    .entry(layer.resolved.clone())
                    .or_insert_with(|| LayerRow {
                        layer: layer.clone(),
                        count: LayerCount::default(),
                    })
                    .count
            }
            None => &mut self.unknown,
        }
    }

    /// Most bytes first, then most copy-ups, then by directory.
    pub fn rows(&self) -> Vec<&LayerRow> {
        let mut v: Vec<&LayerRow> = self.rows.values().collect();
        v.sort_by(|a, b| {
            (b.count.bytes, b.count.copy_ups)
                .cmp(&(a.count.bytes, a.count.copy_ups))
                .then_with(|| a.layer.resolved.cmp(&b.layer.resolved))
        });
        v
    }
}
