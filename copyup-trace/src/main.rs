//! copyup-trace: trace overlayfs copy-ups and attribute them to processes and syscalls.
//! The binary parses the arguments, attaches the probes, runs the session and turns its
//! result into an exit status; it traces and writes nothing itself.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use copyup_trace::{
    attribution::cgroups,
    attribution::runtimes,
    check,
    cli::{Args, CheckOutput, Sub},
    kernel::facts,
    kernel::plan,
    kernel::preflight,
    kernel::probes::{Filter, Probes},
    options::Options,
    session::{self, SpawnError},
};

fn parse_args() -> Result<Args, ExitCode> {
    Args::try_parse().map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                ExitCode::SUCCESS
            }
            _ => {
                // clap's first line is the error itself; the rest is usage boilerplate.
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or("invalid arguments");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                eprintln!("copyup-trace: {first} (see --help)");
                ExitCode::from(2)
            }
        }
    })
}

fn start(args: &Args, opts: &Options) -> Result<Probes> {
    let t0 = std::time::Instant::now();
    preflight::check()?;
    let facts = facts::facts().context("reading kernel facts")?;
    let facts_us = t0.elapsed().as_micros();
    let plan = plan::decide(&facts, args.probes)?;
    preflight::kprobes(&plan)?;
    log::debug!("kernel {}: probe plan {plan:?}", facts.release);
    if opts.stacks.is_some() {
        if let Some(why) = plan::stack_limit(&facts.release) {
            eprintln!("copyup-trace: warning: {why}");
        }
    }
    for (func, m) in &plan.mechanisms {
        match m {
            plan::Mechanism::Fentry(_) => log::debug!("plan: {func}: fentry"),
            plan::Mechanism::Kprobe { why_not_fentry } if why_not_fentry.is_empty() => {
                log::debug!("plan: {func}: kprobe (--probes kprobe)")
            }
            plan::Mechanism::Kprobe { why_not_fentry } => {
                log::debug!("plan: {func}: kprobe, not fentry: {why_not_fentry}")
            }
        }
    }
    let filter = Filter {
        tgid: args.pid,
        comm: args.comm.clone(),
        stacks: opts.stacks.is_some(),
        cgroups: match &args.cgroup {
            Some(p) => Some(cgroups::subtree_ids(p)?),
            None if !args.container.is_empty() => Some(runtimes::filter_cgroups(
                &args.container,
                &cgroups::container_cgroups(),
                &mut runtimes::Runtimes::new(runtimes::Roots::default()),
            )?),
            None => None,
        },
        tree: !opts.command.is_empty(),
    };
    let probes = Probes::load(&plan, &filter, args.ring_size as u32)?;
    log::info!(
        "probes attached in {} us (kernel facts {facts_us} us, load and attach {} us)",
        t0.elapsed().as_micros(),
        t0.elapsed().as_micros() - facts_us
    );
    Ok(probes)
}

/// `copyup-trace check`: 0 if this host can be traced, 1 if not.
fn host_check(output: CheckOutput) -> ExitCode {
    let report = check::run();
    let mut out = std::io::stdout().lock();
    let written = match output {
        CheckOutput::Table => check::write_table(&mut out, &report),
        CheckOutput::Json => check::write_json(&mut out, &report),
    };
    match written {
        Err(e) if !session::is_broken_pipe(&e) => {
            eprintln!("copyup-trace: {e:#}");
            ExitCode::FAILURE
        }
        _ if report.traceable => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("COPYUP_TRACE_LOG", "warn"))
        .format_timestamp(None)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(Sub::Check { output }) = args.sub {
        return host_check(output);
    }
    let opts = match Options::new(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("copyup-trace: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| {
            // Caught before the slow start-up, so that a Ctrl-C during it ends the run.
            let signals = {
                let _in_runtime = rt.enter();
                session::Signals::catch()?
            };
            let probes = start(&args, &opts)?;
            rt.block_on(session::run(&opts, probes, signals))
        });
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code.clamp(0, 255) as u8),
        // Whoever read our output has stopped (`| head`): the probes are already
        // detached, and there is nobody to tell.
        Err(e) if session::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("copyup-trace: {msg}");
            let code = e.downcast_ref::<SpawnError>().map(|s| s.code).unwrap_or(1);
            ExitCode::from(code as u8)
        }
    }
}
