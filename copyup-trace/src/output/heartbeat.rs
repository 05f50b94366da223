//! The heartbeat of a quiet host-wide trace, on stderr.

use anyhow::Result;

use crate::output::{
    render,
    sink::{Sink, Tick},
};

/// A quiet host-wide trace: a progress line on stderr at each tick.
pub struct Heartbeat;

impl Sink for Heartbeat {
    fn tick(&mut self, t: &Tick) -> Result<()> {
        let total = t.totals.total;
        eprintln!(
            "copyup-trace: {} copy-ups ({}) so far, lost events: {}",
            total.copy_ups,
            render::human_bytes(total.bytes),
            t.losses.total()
        );
        Ok(())
    }
}
