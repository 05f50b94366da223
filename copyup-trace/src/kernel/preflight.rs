//! Checks, before anything is loaded, that this host can be traced, so the user gets
//! one clear sentence instead of a verifier dump or a raw errno. The checks themselves
//! are `host`'s; this stops at the first that fails.

use anyhow::{bail, Result};

use crate::kernel::{
    host::{self, Status},
    plan::ProbePlan,
};

/// What every start needs, whatever the probes.
pub fn check() -> Result<()> {
    for item in [host::privileges(), host::vmlinux_btf(), host::overlay()] {
        if item.status == Status::Missing {
            bail!("{}", item.fact);
        }
    }
    Ok(())
}

/// Kprobe support, when `plan` puts a function on a kprobe: a kernel without it is
/// traced where every function takes fentry/fexit.
pub fn kprobes(plan: &ProbePlan) -> Result<()> {
    let Some(why) = plan.kprobes_needed() else {
        return Ok(());
    };
    let item = host::kprobe_support();
    if item.status == Status::Missing {
        bail!("{} ({why})", item.fact);
    }
    if let Some(refused) = host::kprobes_refused() {
        bail!("{refused} ({why})");
    }
    Ok(())
}
