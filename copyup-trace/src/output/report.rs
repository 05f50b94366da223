//! `--report FILE.json`: the final summary with every breakdown, written at the end.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::output::{
    render::{self, TableOpts},
    sink::{End, Sink},
};

/// `--report`: the final summary with every breakdown, as a JSON file.
pub struct ReportFile {
    pub(super) path: PathBuf,
    pub(super) opts: TableOpts,
}

impl Sink for ReportFile {
    fn finish(&mut self, end: &End) -> Result<()> {
        let mut report = render::report(
            end.totals,
            &end.losses,
            end.started.elapsed(),
            end.command_elapsed,
            &self.opts,
        );
        // As in the JSON summary: the mechanism each probed function got.
        report["probes"] = serde_json::json!(end.probes.mechanisms());
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&self.path, text + "\n")
            .with_context(|| format!("writing report {}", self.path.display()))
    }
}
