//! Checks, before anything is loaded, that this host can be traced, so the user gets
//! one clear sentence instead of a verifier dump or a raw errno. The checks themselves
//! are `check`'s; this stops at the first that fails.

use anyhow::{bail, Result};

use crate::check::{self, Status};

pub fn check() -> Result<()> {
    for item in [
        check::privileges(),
        check::kprobe_support(),
        check::vmlinux_btf(),
        check::overlay(),
    ] {
        if item.status == Status::Missing {
            bail!("{}", item.fact);
        }
    }
    Ok(())
}
