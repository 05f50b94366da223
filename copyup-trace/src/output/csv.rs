//! `-o csv`: a header, then a row per copy-up.

use std::io::Write;

use anyhow::Result;

use crate::{
    events::decode::CopyUp,
    output::{
        render,
        sink::{End, Sink},
    },
};

/// `-o csv`: the header at once, a row per copy-up as it comes. Lost events go to
/// stderr, as a CSV file has no place for them.
pub struct CsvRows<W: Write> {
    pub(super) rows: csv::Writer<W>,
}

impl<W: Write> CsvRows<W> {
    pub(super) fn new(out: W) -> Result<Self> {
        Ok(CsvRows {
            rows: render::csv_writer(out)?,
        })
    }
}

impl<W: Write> Sink for CsvRows<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        render::csv_event(&mut self.rows, c)
    }

    fn flush(&mut self) -> Result<()> {
        self.rows.flush()?;
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        self.rows.flush()?;
        if end.losses.total() > 0 {
            eprintln!("copyup-trace: lost events: {}", end.losses.total());
        }
        Ok(())
    }
}
