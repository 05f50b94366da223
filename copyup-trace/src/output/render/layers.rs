//! The `--by layer` table and `--report`'s `layers` rows, from `aggregate::layers`.

use std::io::Write;

use anyhow::Result;
use comfy_table::{Cell, CellAlignment};

use crate::{
    escape::escape,
    output::{
        aggregate::layers::{LayerRow, LayerTotals},
        render::{human_bytes, new_table},
    },
};

/// `--by layer`: copy-ups, bytes, the layer's size, the share of it copied up and the
/// image step that created it.
pub fn write_table(out: &mut impl Write, totals: &LayerTotals, top: usize) -> Result<()> {
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    let mut t = new_table(&[
        "LAYER",
        "DIR",
        "COPY-UPS",
        "BYTES",
        "LAYER SIZE",
        "SHARE",
        "CREATED BY",
    ]);
    let rows = totals.rows();
    start_sizing(&rows, top);
    for r in rows.iter().take(top) {
        let (size, share) = r.size_and_share();
        t.add_row(vec![
            Cell::new(r.name()),
            Cell::new(escape(&r.layer.resolved)),
            right(r.count.copy_ups.to_string()),
            right(human_bytes(r.count.bytes)),
            right(size.map(human_bytes).unwrap_or_else(|| "?".into())),
            right(
                share
                    .map(|s| format!("{:.1}%", s * 100.0))
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(r.created_by().unwrap_or_default()),
        ]);
    }
    if totals.unknown.copy_ups > 0 {
        t.add_row(vec![
            Cell::new("(unknown)"),
            Cell::new("not told by the kernel"),
            right(totals.unknown.copy_ups.to_string()),
            right(human_bytes(totals.unknown.bytes)),
            right(String::new()),
            right(String::new()),
            Cell::new(""),
        ]);
    }
    writeln!(
        out,
        "\nCopy-ups by lower layer (most bytes first; SHARE = bytes copied up / the layer's file bytes):\n{t}"
    )?;
    if rows.len() > top {
        writeln!(out, "... {} more layers", rows.len() - top)?;
    }
    Ok(())
}

/// Starts the size walks of the rows shown, so that they run side by side. Layers are
/// walked only here, when an output shows their sizes: a walk stats every file of the
/// layer, which the traced host would otherwise pay during the trace.
fn start_sizing(rows: &[&LayerRow], top: usize) {
    for r in rows.iter().take(top) {
        r.layer.start_sizing();
    }
}

/// `--report`'s `layers`: the top rows with exact sizes.
pub fn report_rows(totals: &LayerTotals, top: usize) -> serde_json::Value {
    let rows = totals.rows();
    start_sizing(&rows, top);
    let mut rows: Vec<serde_json::Value> = rows
        .iter()
        .take(top)
        .map(|r| {
            let (size, share) = r.size_and_share();
            serde_json::json!({
                "name": r.name(),
                "dir": escape(&r.layer.resolved),
                "store": r.layer.runtime.as_ref().map(|x| x.store),
                "id": r.layer.runtime.as_ref().map(|x| escape(x.id.as_bytes())),
                "copy_ups": r.count.copy_ups,
                "bytes": r.count.bytes,
                "layer_bytes": size,
                "share": share,
                "created_by": r.created_by(),
            })
        })
        .collect();
    if totals.unknown.copy_ups > 0 {
        rows.push(serde_json::json!({
            "name": null,
            "copy_ups": totals.unknown.copy_ups,
            "bytes": totals.unknown.bytes,
        }));
    }
    serde_json::Value::Array(rows)
}
