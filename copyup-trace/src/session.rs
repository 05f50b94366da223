//! One tracing session: start the optional command, read events until it exits (or
//! Ctrl-C / --duration), keep the copy-ups the options ask for and hand them to the
//! outputs, then end the run. It does not choose outputs or write them (`output` and
//! `render` do), and it does not load the probes (`probes` does).

use std::{
    collections::VecDeque,
    ffi::OsString,
    io,
    process::ExitStatus,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use aya_log::EbpfLogger;
use copyup_trace_common::hooks;
use tokio::{
    io::{unix::AsyncFd, Interest},
    process::{Child, Command},
    signal::unix::SignalKind,
};

use crate::{
    attribution::cgroups::{CgroupResolver, CGROUP2_ROOT},
    attribution::mounts::OverlayMounts,
    attribution::runtimes::{Lookups, Roots},
    events::decode::{CopyUp, Decoded, Decoder, OpDone},
    events::enrich::{Enricher, LOOKUP_BOUND},
    kernel::{modwatch::OverlayWatch, plan::Attach, probes::Probes},
    options::Options,
    output::aggregate::{Aggregate, Limits},
    output::{
        self,
        sink::{End, Sink, Status, Tick},
        Outputs,
    },
};

/// Why the session ended, and with which exit code the tool should leave.
pub struct Outcome {
    pub exit_code: i32,
}

/// Error for a command that cannot be started, carrying the shell's exit code.
#[derive(Debug)]
pub struct SpawnError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpawnError {}

/// Whether `err` comes from writing to a closed pipe (`copyup-trace -o json | head -1`):
/// the reader has what it wanted, so this is the end of the run rather than a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        // csv and serde_json wrap the io::Error without exposing it as a source.
        let kind = if let Some(e) = cause.downcast_ref::<io::Error>() {
            Some(e.kind())
        } else if let Some(e) = cause.downcast_ref::<serde_json::Error>() {
            e.io_error_kind()
        } else if let Some(e) = cause.downcast_ref::<csv::Error>() {
            match e.kind() {
                csv::ErrorKind::Io(e) => Some(e.kind()),
                _ => None,
            }
        } else {
            None
        };
        kind == Some(io::ErrorKind::BrokenPipe)
    })
}

/// Decodes what the ring holds, keeps the copy-ups the options ask for, enriches and
/// counts them, and hands them to the outputs.
struct Records<'o> {
    opts: &'o Options,
    decoder: Decoder,
    enricher: Enricher,
    /// Records behind one whose container's runtime has not answered yet, in order:
    /// draining the ring never waits for a runtime, the outputs see records complete.
    held: VecDeque<Held>,
    /// Totals for the whole run.
    totals: Aggregate,
    outputs: Outputs,
}

enum Held {
    CopyUp(Box<CopyUp>),
    Op(OpDone),
}

impl<'o> Records<'o> {
    fn new(opts: &'o Options) -> Result<Self> {
        Ok(Records {
            opts,
            decoder: Decoder::default(),
            enricher: Enricher::new(
                // Without mountinfo, paths stay relative to the overlay: worth a warning,
                // not an abort.
                OverlayMounts::load()
                    .map_err(|e| log::warn!("mount points unknown: {e:#}"))
                    .ok(),
                CgroupResolver::new(CGROUP2_ROOT).scanned(),
            )
            .with_runtimes(Lookups::start(Roots::default()), LOOKUP_BOUND),
            held: VecDeque::new(),
            // Bounded: the heaviest rows by the report's sort key are kept.
            totals: Aggregate::new(Limits {
                by: opts.table.sort,
                ..Limits::default()
            }),
            outputs: Outputs::new(opts, output::stdout)?,
        })
    }

    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> Result<()> {
        self.enricher.poll(Instant::now());
        self.release()?;
        while let Some(item) = ring.next() {
            match self.decoder.decode(&item)? {
                Decoded::CopyUp(c) => {
                    if !self.opts.keeps(c) {
                        continue;
                    }
                    let ready = self.enricher.enrich(c);
                    if ready && self.held.is_empty() {
                        self.outputs.copy_up(c)?;
                        self.totals.add(c);
                    } else {
                        self.held.push_back(Held::CopyUp(Box::new(c.clone())));
                    }
                }
                Decoded::OpDone(d) if self.held.is_empty() => {
                    self.outputs.op(&d)?;
                    self.totals.add_op(&d);
                }
                Decoded::OpDone(d) => self.held.push_back(Held::Op(d)),
                // Learnt at once: it comes before any record of its tasks.
                Decoded::Cgroup(m) => self.enricher.cgroup_made(m.id, m.path),
            }
        }
        self.outputs.flush()
    }

    /// Hands on the held records, in order, up to the first still waiting.
    fn release(&mut self) -> Result<()> {
        while let Some(front) = self.held.front_mut() {
            if let Held::CopyUp(c) = front {
                if !self.enricher.complete(c) {
                    break;
                }
            }
            match self.held.pop_front() {
                Some(Held::CopyUp(c)) => {
                    self.outputs.copy_up(&c)?;
                    self.totals.add(&c);
                }
                Some(Held::Op(d)) => {
                    self.outputs.op(&d)?;
                    self.totals.add_op(&d);
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The last records: what the ring holds, and those held for a runtime, which gets
    /// what is left of its bound to answer.
    fn drain_last(&mut self, ring: &mut RingBuf<MapData>) -> Result<()> {
        self.drain(ring)?;
        self.enricher.settle();
        self.release()?;
        self.outputs.flush()
    }

    /// Hands the kernel side's counters to the outputs that show them while tracing.
    fn status(&mut self, probes: &Probes) -> Result<()> {
        self.outputs.status(&Status {
            losses: probes.losses()?,
            probes,
        })
    }

    fn tick(&mut self, ring: &mut RingBuf<MapData>, probes: &Probes) -> Result<()> {
        self.drain(ring)?;
        self.outputs.tick(&Tick {
            totals: &self.totals,
            losses: probes.losses()?,
            now: SystemTime::now(),
        })
    }
}

fn spawn(probes: &mut Probes, argv: &[OsString]) -> Result<Child> {
    let me = std::process::id();
    // The child is traced from its first instruction: while we are in the traced set,
    // the fork tracepoint adds every child we create, and we leave the set right after.
    probes.track(me)?;
    let spawned = Command::new(&argv[0]).args(&argv[1..]).spawn();
    probes.untrack(me)?;
    spawned.map_err(|e| {
        let code = match e.kind() {
            io::ErrorKind::NotFound => 127,
            _ => 126,
        };
        anyhow::Error::new(SpawnError {
            code,
            message: format!("cannot run {:?}: {e}", argv[0]),
        })
    })
}

fn status_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// How the trace loop ended.
struct Stop {
    exit_code: i32,
    command_elapsed: Option<Duration>,
}

/// A stop by signal. Ctrl-C is how a host-wide trace normally ends (exit 0); with a
/// command still running, the exit status reports the interruption as a shell would.
fn stopped(with_command: bool, signal_code: i32) -> Stop {
    Stop {
        exit_code: if with_command { signal_code } else { 0 },
        command_elapsed: None,
    }
}

/// SIGINT and SIGTERM, caught from the start of the process: a script that launches the
/// tool in the background (where SIGINT is ignored until a handler is installed) and
/// stops it while the probes are still loading must not be ignored.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; needs the runtime's context (`Runtime::enter`) and must run
    /// before any other thread is started.
    pub fn catch() -> Result<Signals> {
        let catch = |kind| tokio::signal::unix::signal(kind).context("catching signals");
        // The registry installs its handler before it records what the handler does, and
        // a signal in between goes to the old disposition (ignored, in a background job).
        // Held back meanwhile, it is delivered once the handler is whole.
        let _held = HeldSignals::new(&[libc::SIGINT, libc::SIGTERM])?;
        Ok(Signals {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
        })
    }

    /// The shell-style exit code of the next signal.
    async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => 130,
            _ = self.term.recv() => 143,
        }
    }

    /// The exit code of a signal that has already arrived, without waiting.
    async fn pending(&mut self) -> Option<i32> {
        // A signal reaches its stream only once the runtime's driver has run: yielding
        // lets it run once.
        tokio::task::yield_now().await;
        tokio::select! {
            biased;
            code = self.recv() => Some(code),
            _ = std::future::ready(()) => None,
        }
    }
}

/// Signals blocked on this thread until dropped; one that arrives meanwhile stays
/// pending and is delivered when they are unblocked.
struct HeldSignals(libc::sigset_t);

impl HeldSignals {
    fn new(signals: &[libc::c_int]) -> Result<HeldSignals> {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before use; the
        // mask calls only read and write the sets given.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                libc::sigaddset(&mut set, sig);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc)).context("blocking signals");
            }
            Ok(HeldSignals(old))
        }
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

pub async fn run(opts: &Options, mut probes: Probes, mut signals: Signals) -> Result<Outcome> {
    let started = Instant::now();
    let mut streams = Streams::take(&mut probes)?;
    let mut records = Records::new(opts)?;
    records.status(&probes)?;
    // The command's wall time counts from its spawn: a short command may have copied
    // up before the event loop starts.
    let command_started = Instant::now();
    // A signal that came while the probes were loading ends the run before it begins,
    // with the same report (and no command started).
    let (mut child, stop) = match signals.pending().await {
        Some(code) => (None, stopped(!opts.command.is_empty(), code)),
        None => {
            let mut child = start_command(opts, &mut probes)?;
            let stop = trace(
                opts,
                &probes,
                &mut streams,
                &mut records,
                &mut signals,
                child.as_mut(),
                command_started,
            )
            .await?;
            (child, stop)
        }
    };
    // Copy-ups complete before the syscall that caused them returns, so everything the
    // command caused is already in the ring.
    records.drain_last(streams.ring.get_mut())?;
    let exit_code = match child.as_mut().map(|c| c.try_wait()) {
        Some(Ok(Some(status))) => status_code(status),
        _ => stop.exit_code,
    };
    // Entries of threads that have exited are returns the kernel skipped: count them.
    let reaped = probes.reap_exited()?;
    if reaped > 0 {
        log::info!("{reaped} per-thread entries of exited threads: missed returns");
    }
    records.outputs.finish(&End {
        totals: &records.totals,
        losses: probes.losses()?,
        started,
        command_elapsed: stop.command_elapsed,
        probes: &probes,
    })?;
    Ok(Outcome { exit_code })
}

/// What the kernel side sends, registered with the runtime.
struct Streams {
    ring: AsyncFd<RingBuf<MapData>>,
    logger: Option<AsyncFd<EbpfLogger<&'static dyn log::Log>>>,
}

impl Streams {
    fn take(probes: &mut Probes) -> Result<Streams> {
        // SAFETY: the ring buffer and logger own their map fds, which stay open and
        // unchanged until the AsyncFd wrapping them is dropped.
        let ring =
            unsafe { AsyncFd::register_with_interest(probes.take_events()?, Interest::READABLE) }
                .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
        let logger = probes
            .take_logger()
            .and_then(|l| unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }.ok());
        Ok(Streams { ring, logger })
    }
}

/// Runs `-- COMMAND` under the probes, or says that a host-wide trace has begun.
fn start_command(opts: &Options, probes: &mut Probes) -> Result<Option<Child>> {
    if opts.command.is_empty() {
        // On stderr so that JSON/CSV on stdout stay clean; scripts can wait for it to
        // know the probes are attached.
        eprintln!("Tracing overlayfs copy-ups... Hit Ctrl-C to end.");
        Ok(None)
    } else {
        spawn(probes, &opts.command).map(Some)
    }
}

/// Reads events until the command exits, a signal arrives or `--duration` is up.
async fn trace(
    opts: &Options,
    probes: &Probes,
    streams: &mut Streams,
    records: &mut Records<'_>,
    signals: &mut Signals,
    mut child: Option<&mut Child>,
    command_started: Instant,
) -> Result<Stop> {
    let Streams { ring, logger } = streams;
    let deadline = async {
        match opts.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut ticker = opts.tick_every().map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    // The kernel side wakes us only once an eighth of the ring is waiting; this drains
    // a trickle of events promptly.
    let mut drain_tick = tokio::time::interval(Duration::from_millis(25));
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The kernel side's counters, for the outputs that show them while tracing.
    let mut status_tick = records.outputs.status_every().map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    // Kprobes on overlay vanish with its module (fentry/fexit pin it): say so if it goes.
    let on_kprobes = probes
        .mechanisms()
        .iter()
        .any(|(func, m)| hooks::in_overlay_module(func) && *m == Attach::Kprobe);
    let mut overlay = on_kprobes.then(OverlayWatch::new).flatten();
    let mut module_tick = tokio::time::interval(Duration::from_secs(1));

    let with_command = child.is_some();
    loop {
        tokio::select! {
            _ = drain_tick.tick() => records.drain(ring.get_mut())?,
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                records.drain(guard.get_inner_mut())?;
                guard.clear_ready();
            }
            guard = async { logger.as_mut().unwrap().readable_mut().await }, if logger.is_some() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            status = async { child.as_mut().unwrap().wait().await }, if child.is_some() => {
                return Ok(Stop {
                    exit_code: status_code(status.context("waiting for the command")?),
                    command_elapsed: Some(command_started.elapsed()),
                });
            }
            code = signals.recv() => return Ok(stopped(with_command, code)),
            _ = &mut deadline => return Ok(stopped(with_command, 0)),
            _ = async { ticker.as_mut().unwrap().tick().await }, if ticker.is_some() => {
                records.tick(ring.get_mut(), probes)?;
            }
            _ = async { status_tick.as_mut().unwrap().tick().await }, if status_tick.is_some() => {
                records.status(probes)?;
            }
            _ = module_tick.tick(), if overlay.is_some() => {
                if let Some(what) = overlay.as_mut().and_then(OverlayWatch::check) {
                    eprintln!("copyup-trace: {what}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_error() -> io::Error {
        io::Error::from(io::ErrorKind::BrokenPipe)
    }

    #[test]
    fn broken_pipe_anywhere_in_the_chain() {
        assert!(is_broken_pipe(&anyhow::Error::new(pipe_error())));
        assert!(is_broken_pipe(
            &anyhow::Error::new(pipe_error()).context("writing the summary")
        ));
        assert!(is_broken_pipe(&serde_json::Error::io(pipe_error()).into()));
        let csv_err = csv::Error::from(pipe_error());
        assert!(is_broken_pipe(
            &anyhow::Error::new(csv_err).context("a row")
        ));
    }

    #[test]
    fn other_errors_are_not_a_closed_pipe() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!is_broken_pipe(&anyhow::Error::new(denied)));
        assert!(!is_broken_pipe(&anyhow::anyhow!("Broken pipe")));
        let spawn = SpawnError {
            code: 127,
            message: "cannot run \"x\"".into(),
        };
        assert!(!is_broken_pipe(&anyhow::Error::new(spawn)));
    }
}
