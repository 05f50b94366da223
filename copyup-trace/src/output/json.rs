//! `-o json`: JSON lines as records come, then the summary line.

use std::io::Write;

use anyhow::Result;

use crate::{
    events::decode::{CopyUp, OpDone},
    output::{
        render,
        sink::{End, Sink},
    },
};

/// `-o json`: a line per copy-up and per finished operation as they come, then a
/// summary line.
pub struct JsonLines<W> {
    pub(super) out: W,
}

impl<W: Write> Sink for JsonLines<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        render::json_event(&mut self.out, c)
    }

    fn op(&mut self, d: &OpDone) -> Result<()> {
        render::json_op(&mut self.out, d)
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        render::json_summary(
            &mut self.out,
            end.totals,
            &end.losses,
            end.started.elapsed(),
            end.command_elapsed,
            end.probes.state_entries(),
            &end.probes.mechanisms(),
        )?;
        self.out.flush()?;
        Ok(())
    }
}
