//! Checks, before anything is loaded, that this host can be traced, so the user gets
//! one clear sentence instead of a verifier dump or a raw errno. The checks themselves
//! are `check`'s; this stops at the first that fails.

use anyhow::{bail, Result};

use crate::{
    check::{self, Status},
    plan::ProbePlan,
};

/// What every start needs, whatever the probes.
pub fn check() -> Result<()> {
    for item in [check::privileges(), check::vmlinux_btf(), check::overlay()] {
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
    let item = check::kprobe_support();
    if item.status == Status::Missing {
        bail!("{} ({why})", item.fact);
    }
    Ok(())
}
