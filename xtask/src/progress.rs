//! Progress of xtask's long steps, on stderr: a spinner (or a byte bar) when stderr is a
//! terminal, otherwise plain `==> step` and `    done in 12.3s` lines that read well in CI
//! logs. It only shows progress; doing the steps and reporting their errors is the callers'.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One long step under way. Dropped without [`Step::done`] (an error returned with `?`),
/// it is shown as failed.
pub struct Step {
    what: String,
    started: Instant,
    bar: Option<ProgressBar>,
    ok: bool,
}

impl Step {
    /// Starts a step whose length is not known.
    pub fn start(what: impl Into<String>) -> Step {
        Step::new(what.into(), None)
    }

    /// Starts a step that moves `total` bytes; [`Step::bytes`] tells how far it got.
    pub fn with_bytes(what: impl Into<String>, total: u64) -> Step {
        Step::new(what.into(), Some(total))
    }

    fn new(what: String, total: Option<u64>) -> Step {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(n) => (
                    ProgressBar::new(n),
                    "{spinner:.green} {msg} [{wide_bar}] {bytes}/{total_bytes}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{spinner:.green} {msg} {elapsed}",
                ),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(what.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            eprintln!("==> {what}");
        }
        Step {
            what,
            started: Instant::now(),
            bar,
            ok: false,
        }
    }

    /// How many of the step's bytes are done.
    pub fn bytes(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    pub fn done(mut self) {
        self.ok = true;
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let verdict = if self.ok { "done in" } else { "failed after" };
        match self.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!("==> {}: {verdict} {secs:.1}s", self.what);
            }
            None => eprintln!("    {verdict} {secs:.1}s"),
        }
    }
}

/// Runs `f` as one step called `what`.
pub fn step<T>(
    what: impl Into<String>,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let s = Step::start(what);
    let r = f()?;
    s.done();
    Ok(r)
}
