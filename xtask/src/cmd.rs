//! Runs other programs for xtask: in the foreground (`run`), silently with the output kept
//! for the error (`run_quiet`), for their stdout (`capture`), or for a caller to judge
//! (`outcome`). What to run and what its result means is left to the callers.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use anyhow::{bail, Context, Result};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The cargo that runs us (else `cargo` from PATH), in the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Runs a command with the terminal as its stdin, stdout and stderr; fails if it exits
/// non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs a command with its output captured; on failure the error carries the command line
/// and the tail of its output.
pub fn run_quiet(cmd: &mut Command) -> Result<()> {
    let (shown, out) = output(cmd)?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        bail!("`{shown}` failed ({}):\n{}", out.status, tail(&text, 30));
    }
    Ok(())
}

/// Runs a command and returns its stdout; fails with the tail of its stderr if it exits
/// non-zero.
pub fn capture(cmd: &mut Command) -> Result<String> {
    capture_bytes(cmd).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// As [`capture`], for output that is not text.
pub fn capture_bytes(cmd: &mut Command) -> Result<Vec<u8>> {
    let (shown, out) = output(cmd)?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
    Ok(out.stdout)
}

/// What a finished command left: exit code (-1 if killed by a signal) and its output.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion whatever its exit status; fails only if it cannot start.
pub fn outcome(cmd: &mut Command) -> Result<Outcome> {
    let (_, out) = output(cmd)?;
    Ok(Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn output(cmd: &mut Command) -> Result<(String, Output)> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    Ok((shown, out))
}

/// The command line, as a user would type it (without quoting).
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_reports() {
        assert_eq!(capture(Command::new("echo").arg("hi")).unwrap(), "hi\n");
        let o = outcome(Command::new("sh").args(["-c", "echo err >&2; exit 3"])).unwrap();
        assert_eq!((o.code, o.stderr.as_str()), (3, "err\n"));
        let e = run_quiet(Command::new("sh").args(["-c", "echo why; exit 1"])).unwrap_err();
        assert!(format!("{e:#}").contains("why"), "{e:#}");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
