//! One tracing session: start the optional command, read events until it exits (or
//! Ctrl-C / --duration), stream machine-readable records, and produce the report.

use std::{
    ffi::OsString,
    io::{self, Write},
    process::ExitStatus,
    time::{Instant, SystemTime},
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{unix::AsyncFd, Interest},
    process::Command,
    signal::unix::SignalKind,
};

use crate::{
    aggregate::Aggregate,
    cgroups::{CgroupResolver, CGROUP2_ROOT},
    cli::{Args, Output},
    decode::{CopyUp, Decoded, Decoder, OpDone},
    enrich::Enricher,
    mounts::OverlayMounts,
    probes::Probes,
    render,
    stacks::{KernelSymbols, StackCollector, StackOutputs},
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

struct Sink {
    output: Output,
    min_size: u64,
    min_latency_ns: u64,
    /// Totals for the whole run (final report).
    agg: Aggregate,
    /// Totals since the last `--interval` table.
    window: Option<Aggregate>,
    events: bool,
    csv: Option<csv::Writer<io::Stdout>>,
    enricher: Enricher,
    stacks: Option<StackCollector>,
}

impl Sink {
    fn new(args: &Args) -> Result<Sink> {
        Ok(Sink {
            output: args.output,
            min_size: args.min_size.unwrap_or(0),
            min_latency_ns: args.min_latency.map(|d| d.as_nanos() as u64).unwrap_or(0),
            agg: Aggregate::default(),
            window: args.interval.map(|_| Aggregate::default()),
            events: args.events,
            enricher: Enricher::new(
                // Without mountinfo, paths stay relative to the overlay: worth a warning,
                // not an abort.
                OverlayMounts::load()
                    .map_err(|e| log::warn!("mount points unknown: {e:#}"))
                    .ok(),
                CgroupResolver::new(CGROUP2_ROOT),
            ),
            stacks: (args.stacks.is_some() || args.flamegraph.is_some())
                .then(StackCollector::default),
            csv: match args.output {
                Output::Csv => Some(render::csv_writer(io::stdout())?),
                _ => None,
            },
        })
    }

    fn keep(&self, c: &CopyUp) -> bool {
        c.bytes >= self.min_size && c.copy_ns >= self.min_latency_ns
    }

    fn push(&mut self, c: &mut CopyUp) -> Result<()> {
        if !self.keep(c) {
            return Ok(());
        }
        self.enricher.enrich(c);
        let c = &*c;
        if self.events {
            render::event_line(&mut io::stdout().lock(), c, SystemTime::now())?;
        }
        if let Some(w) = &mut self.window {
            w.add(c);
        }
        if let Some(s) = &mut self.stacks {
            s.add(c);
        }
        match self.output {
            Output::Json => render::json_event(&mut io::stdout().lock(), c)?,
            Output::Csv => {
                if let Some(w) = &mut self.csv {
                    render::csv_event(w, c)?;
                }
            }
            Output::Table => {}
        }
        self.agg.add(c);
        Ok(())
    }

    fn op_done(&mut self, d: OpDone) -> Result<()> {
        if self.output == Output::Json {
            render::json_op(&mut io::stdout().lock(), &d)?;
        }
        self.agg.add_op(&d);
        if let Some(w) = &mut self.window {
            w.add_op(&d);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(w) = &mut self.csv {
            w.flush()?;
        }
        io::stdout().flush()?;
        Ok(())
    }
}

fn drain(ring: &mut RingBuf<MapData>, decoder: &mut Decoder, sink: &mut Sink) -> Result<()> {
    while let Some(item) = ring.next() {
        match decoder.decode(&item)? {
            Decoded::CopyUp(c) => sink.push(c)?,
            Decoded::OpDone(d) => sink.op_done(d)?,
        }
    }
    sink.flush()
}

fn spawn(probes: &mut Probes, argv: &[OsString]) -> Result<tokio::process::Child> {
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

pub async fn run(args: &Args, mut probes: Probes) -> Result<Outcome> {
    let started = Instant::now();
    // SAFETY: the ring buffer and logger own their map fds, which stay open and
    // unchanged until the AsyncFd wrapping them is dropped.
    let mut ring =
        unsafe { AsyncFd::register_with_interest(probes.take_events()?, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
    let mut logger = probes
        .take_logger()
        .and_then(|l| unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }.ok());
    let mut sink = Sink::new(args)?;
    let mut decoder = Decoder::default();

    let table_opts = render::TableOpts {
        by: args.by.clone(),
        sort: args.sort,
        top: args.top as usize,
        hist: args.hist,
    };
    if args.events {
        println!("{}", render::EVENT_HEADER);
    }
    let mut child = if args.command.is_empty() {
        // On stderr so that JSON/CSV on stdout stay clean; scripts can wait for it to
        // know the probes are attached.
        eprintln!("Tracing overlayfs copy-ups... Hit Ctrl-C to end.");
        None
    } else {
        Some(spawn(&mut probes, &args.command)?)
    };
    let command_started = Instant::now();
    let mut command_elapsed = None;

    let mut sigint = tokio::signal::unix::signal(SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(SignalKind::terminate())?;
    let deadline = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    // A quiet host-wide trace still shows it is alive: a progress line on stderr.
    let quiet = args.command.is_empty()
        && args.output == Output::Table
        && args.interval.is_none()
        && !args.events;
    let mut heartbeat = quiet.then(|| {
        let every = std::time::Duration::from_secs(10);
        tokio::time::interval_at(tokio::time::Instant::now() + every, every)
    });
    let mut ticker = args.interval.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        (t, every)
    });

    // The kernel side wakes us only once an eighth of the ring is waiting; this drains
    // a trickle of events promptly.
    let mut drain_tick = tokio::time::interval(std::time::Duration::from_millis(25));
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut exit_code = 0;
    loop {
        tokio::select! {
            _ = drain_tick.tick() => drain(ring.get_mut(), &mut decoder, &mut sink)?,
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut decoder, &mut sink)?;
                guard.clear_ready();
            }
            guard = async { logger.as_mut().unwrap().readable_mut().await }, if logger.is_some() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            status = async { child.as_mut().unwrap().wait().await }, if child.is_some() => {
                exit_code = status_code(status.context("waiting for the command")?);
                command_elapsed = Some(command_started.elapsed());
                break;
            }
            // Ctrl-C is how a host-wide trace normally ends; with a command still
            // running, report the interruption in the exit status as a shell would.
            _ = sigint.recv() => { exit_code = if child.is_some() { 130 } else { 0 }; break; }
            _ = sigterm.recv() => { exit_code = if child.is_some() { 143 } else { 0 }; break; }
            _ = &mut deadline => break,
            _ = async { heartbeat.as_mut().unwrap().tick().await }, if heartbeat.is_some() => {
                let t = sink.agg.total;
                eprintln!(
                    "copyup-trace: {} copy-ups ({}) so far, lost events: {}",
                    t.copy_ups,
                    render::human_bytes(t.bytes),
                    probes.losses()?.total()
                );
            }
            _ = async { ticker.as_mut().unwrap().0.tick().await }, if ticker.is_some() => {
                drain(ring.get_mut(), &mut decoder, &mut sink)?;
                let every = ticker.as_ref().map(|t| t.1).unwrap_or_default();
                if let Some(window) = sink.window.replace(Aggregate::default()) {
                    if args.output == Output::Table {
                        let mut out = io::stdout().lock();
                        render::interval_header(&mut out, SystemTime::now(), every)?;
                        render::tables(&mut out, &window, probes.losses()?, &table_opts)?;
                        writeln!(out)?;
                        out.flush()?;
                    }
                }
            }
        }
    }
    // Copy-ups complete before the syscall that caused them returns, so everything the
    // command caused is already in the ring.
    drain(ring.get_mut(), &mut decoder, &mut sink)?;
    if let Some(c) = child.as_mut() {
        if let Ok(Some(status)) = c.try_wait() {
            exit_code = status_code(status);
        }
    }

    let losses = probes.losses()?;
    let mut out = io::stdout().lock();
    match args.output {
        Output::Table => {
            if args.interval.is_some() {
                writeln!(out, "Totals for the whole run:")?;
            }
            render::tables(&mut out, &sink.agg, losses, &table_opts)?
        }
        Output::Json => render::json_summary(
            &mut out,
            &sink.agg,
            losses,
            started.elapsed(),
            command_elapsed,
            probes.state_entries().ok(),
        )?,
        Output::Csv => {
            if losses.total() > 0 {
                eprintln!("copyup-trace: lost events: {}", losses.total());
            }
        }
    }
    out.flush()?;
    if let Some(collector) = &sink.stacks {
        let ksyms = KernelSymbols::load()?;
        let lines = collector.fold(&ksyms, |id| probes.stack_frames(id));
        StackOutputs {
            folded: args.stacks.clone(),
            svg: args.flamegraph.clone(),
        }
        .write(&lines)?;
    }
    if let Some(path) = &args.report {
        let report = render::report(
            &sink.agg,
            losses,
            started.elapsed(),
            command_elapsed,
            &table_opts,
        );
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("writing report {}", path.display()))?;
    }
    Ok(Outcome { exit_code })
}
