//! Checks of start-up and failure: the guest runs the intended kernel, and the tool's
//! errors are one clear line with the right exit status. It judges what
//! `guest/scenarios/errors.sh` saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{ensure, Result};

use super::{one_line_error, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    ("guest runs the expected kernel", kernel),
    ("overlay not loaded: clear error", no_overlay),
    ("command not found: exit 127", not_found),
    ("command's exit status is passed on", exit_status),
    ("bad flag value: one-line error, exit 2", bad_flag),
];

fn kernel(a: &Artifacts) -> Result<()> {
    let got = a.get("uname")?;
    ensure!(got == format!("kernel {}", a.kernel), "{got:?}");
    Ok(())
}

fn no_overlay(a: &Artifacts) -> Result<()> {
    one_line_error(a, "no_overlay", 1, "overlay filesystem is not loaded")
}

fn not_found(a: &Artifacts) -> Result<()> {
    one_line_error(a, "not_found", 127, "/no/such/command")
}

fn exit_status(a: &Artifacts) -> Result<()> {
    let rc = a.rc("exit_status")?;
    ensure!(rc == 3, "exit {rc}, want 3");
    Ok(())
}

fn bad_flag(a: &Artifacts) -> Result<()> {
    one_line_error(a, "bad_flag", 2, "lots")
}
