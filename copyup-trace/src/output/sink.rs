//! What every output is: the `Sink` a session hands its records, ticks and end to, and
//! the state of the run they see (`Status`, `Tick`, `End`). No output lives here.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Result;

use crate::{
    events::decode::{CopyUp, OpDone},
    kernel::{
        plan::Attach,
        probes::{Losses, Probes},
    },
    output::aggregate::Aggregate,
};

/// One output. It sees every kept copy-up and every finished operation as they are
/// decoded, each tick of `--interval` or the heartbeat, and the end of the run.
pub trait Sink {
    fn copy_up(&mut self, _c: &CopyUp) -> Result<()> {
        Ok(())
    }

    fn op(&mut self, _d: &OpDone) -> Result<()> {
        Ok(())
    }

    fn tick(&mut self, _t: &Tick) -> Result<()> {
        Ok(())
    }

    /// After each batch of records: write out what is held back, so that a reader of a
    /// slow trickle sees each record promptly.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, _end: &End) -> Result<()> {
        Ok(())
    }

    /// What only the kernel side counts: at the start, every `status_every` while the
    /// run lasts, and at the end.
    fn status(&mut self, _s: &Status) -> Result<()> {
        Ok(())
    }

    /// How often this output wants `status` while tracing; `None`: only at the start
    /// and the end.
    fn status_every(&self) -> Option<Duration> {
        None
    }
}

/// The kernel side's counters and probes, for sinks that show them while tracing.
pub struct Status<'a> {
    pub losses: Losses,
    pub probes: &'a dyn Probed,
}

/// The state of the run at a tick.
pub struct Tick<'a> {
    /// Everything kept since the start.
    pub totals: &'a Aggregate,
    pub losses: Losses,
    pub now: SystemTime,
}

/// The state of the run at its end.
pub struct End<'a> {
    pub totals: &'a Aggregate,
    pub losses: Losses,
    /// When tracing began; each output measures the run's length when it writes it.
    pub started: Instant,
    /// Wall time of `-- COMMAND`, from spawn to exit.
    pub command_elapsed: Option<Duration>,
    pub probes: &'a dyn Probed,
}

/// What only the kernel side can tell at the end.
pub trait Probed {
    /// Entries left in the kernel's per-thread maps.
    fn state_entries(&self) -> Option<usize>;
    /// A recorded stack's instruction pointers, innermost first.
    fn stack_frames(&self, id: i32) -> Option<Vec<u64>>;
    /// How each probed function was attached, by name.
    fn mechanisms(&self) -> BTreeMap<&'static str, Attach>;
}

impl Probed for Probes {
    fn state_entries(&self) -> Option<usize> {
        Probes::state_entries(self).ok()
    }

    fn stack_frames(&self, id: i32) -> Option<Vec<u64>> {
        Probes::stack_frames(self, id)
    }

    fn mechanisms(&self) -> BTreeMap<&'static str, Attach> {
        Probes::mechanisms(self).clone()
    }
}
