//! `-o table`, with or without `--interval`: the tables at the end, and of each interval.

use std::{io::Write, time::Duration};

use anyhow::Result;

use crate::{
    events::decode::{CopyUp, OpDone},
    output::{
        aggregate::Aggregate,
        render::{self, TableOpts},
        sink::{End, Sink, Tick},
    },
};

/// `-o table`: the summary line and the tables of the whole run, at the end.
pub struct Table<W> {
    pub(super) out: W,
    pub(super) opts: TableOpts,
}

impl<W: Write> Sink for Table<W> {
    fn finish(&mut self, end: &End) -> Result<()> {
        render::tables(&mut self.out, end.totals, &end.losses, &self.opts)?;
        self.out.flush()?;
        Ok(())
    }
}

/// `-o table --interval`: the tables of each interval as it ends (then reset, like top),
/// and those of the whole run at the end.
pub struct IntervalTables<W> {
    pub(super) table: Table<W>,
    /// Totals since the last tick.
    pub(super) window: Aggregate,
    pub(super) every: Duration,
}

impl<W: Write> Sink for IntervalTables<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        self.window.add(c);
        Ok(())
    }

    fn op(&mut self, d: &OpDone) -> Result<()> {
        self.window.add_op(d);
        Ok(())
    }

    fn tick(&mut self, t: &Tick) -> Result<()> {
        let window = std::mem::take(&mut self.window);
        let out = &mut self.table.out;
        render::interval_header(out, t.now, self.every)?;
        render::tables(out, &window, &t.losses, &self.table.opts)?;
        writeln!(out)?;
        out.flush()?;
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        writeln!(self.table.out, "Totals for the whole run:")?;
        self.table.finish(end)
    }
}
