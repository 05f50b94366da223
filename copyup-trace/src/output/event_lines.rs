//! `--events`: a line per copy-up as it comes, beside any format.

use std::{io::Write, time::SystemTime};

use anyhow::Result;

use crate::{
    events::decode::CopyUp,
    output::{render, sink::Sink},
};

/// `--events`: the header at once, then an fsslower-style line per copy-up.
pub struct EventLines<W> {
    pub(super) out: W,
}

impl<W: Write> EventLines<W> {
    pub(super) fn new(mut out: W) -> Result<Self> {
        writeln!(out, "{}", render::EVENT_HEADER)?;
        Ok(EventLines { out })
    }
}

impl<W: Write> Sink for EventLines<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        render::event_line(&mut self.out, c, SystemTime::now())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
