//! The kernel side seen from user space: facts about the running kernel (`facts`,
//! `kallsyms`), the probe plan they decide (`plan`), loading and attaching the eBPF
//! programs and reading their maps (`probes`), the checks before a start (`preflight`),
//! the overlay module's comings and goings (`modwatch`) and whether filesystems can be
//! idmapped (`idmap`). It ends at the ring buffer:
//! what a record means is `events`'.

pub mod facts;
pub mod host;
pub mod idmap;
pub mod kallsyms;
pub mod modwatch;
pub mod plan;
pub mod preflight;
pub mod probes;
