//! Loads the eBPF object, patches in what `plan` decided, and attaches the probes:
//! fentry/fexit where the plan says so (falling back to kprobes per function when the
//! kernel refuses it and the mode allows), kprobes elsewhere.

use std::{collections::BTreeMap, os::fd::OwnedFd};

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::{kernel_btf_fd, FEntry, FExit, KProbe, RawTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};
use copyup_trace_common::{
    arch,
    config::Config,
    counter,
    hooks::{self, FuncHook, RawTracepointHook, TracepointHook, FCHOWNAT},
    inflight_tid, CopyUpEvent, InFlight, OpState, SyscallState, COMM_LEN,
};
use serde::Serialize;

use crate::kernel::{
    host,
    plan::{Attach, BtfFunc, ChownExit, Mechanism, ProbeMode, ProbePlan},
};

/// Events the kernel side could not deliver. Serialized as it is wherever it is shown
/// (summary and report records), with `lost` (`total`) beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Losses {
    /// Dropped because the ring buffer was full.
    pub lost_events: u64,
    /// Copy-ups whose per-thread state could not be kept.
    pub lost_state: u64,
    /// Not lost: copy-ups whose return probe the kernel skipped (all kretprobe instances
    /// in use), sent when their syscall returned.
    pub missed_returns: u64,
    /// Runs of our programs the kernel skipped because another run was in progress on
    /// that CPU (`recursion_misses`). Not in `total`: a skipped return of a copy-up
    /// leaves its state, which is sent late or counted in `missed_returns`; only a
    /// skipped entry of `ovl_copy_up_one` loses a copy-up.
    pub skipped_runs: u64,
    /// `skipped_runs` by program, those with any: which part of a record a skipped run
    /// can have cost depends on the program (an entry of `ovl_copy_up_one` the record, a
    /// data copy's program its bytes, a syscall's or operation's entry its cause).
    pub skipped_by: BTreeMap<String, u64>,
}

impl Losses {
    pub fn total(&self) -> u64 {
        self.lost_events + self.lost_state
    }
}

/// Which tasks the kernel side reports.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tgid: Option<u32>,
    pub comm: Option<String>,
    /// Record stacks of each copy-up.
    pub stacks: bool,
    /// Only these cgroup ids (a cgroup and its descendants).
    pub cgroups: Option<Vec<u64>>,
    /// Follow a process tree seeded through `Probes::track`.
    pub tree: bool,
}

pub struct Probes {
    bpf: Ebpf,
    /// Per-thread entries removed by `reap_exited`: returns the kernel never reported.
    reaped: u64,
    /// The mechanism each attached function got ("fentry" or "kprobe"), by name.
    mechanisms: BTreeMap<&'static str, Attach>,
    /// Kernel BTF objects of modules, by name, opened once.
    btf_objects: BTreeMap<String, OwnedFd>,
}

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/copyup-trace"));

fn raise_memlock() {
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer; failure only matters on old kernels,
    // where the load error that follows says so.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

/// Fault injection for the guest tests: the returns of this process's syscalls and
/// operations go unseen, as when the kernel skips those programs' runs.
pub const SKIP_RETURNS_ENV: &str = "COPYUP_TRACE_SKIP_RETURNS_OF";

/// The kernel side's settings: the plan's facts and the user's filters.
/// `SKIP_RETURNS_ENV` as a pid; 0 when unset.
fn skip_returns_of(value: Option<std::ffi::OsString>) -> Result<u32> {
    let Some(v) = value else { return Ok(0) };
    v.to_str()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{SKIP_RETURNS_ENV}={v:?} is not a pid"))
}

fn config(plan: &ProbePlan, filter: &Filter, ring_size: u32) -> Config {
    let mut filter_comm = [0u8; COMM_LEN];
    if let Some(c) = &filter.comm {
        filter_comm[..c.len()].copy_from_slice(c.as_bytes());
    }
    Config {
        filter_tgid: filter.tgid.unwrap_or(0),
        filter_tracked: filter.tree as u32,
        filter_cgroup: filter.cgroups.is_some() as u32,
        filter_comm_set: filter.comm.is_some() as u32,
        filter_comm,
        capture_stacks: filter.stacks as u32,
        sees_waits: plan.copy_up_end as u32,
        wakeup_bytes: ring_size / 8,
        sys_exit_ret_off: match plan.chown_exit {
            ChownExit::Tracepoints { ret_offset } => ret_offset,
            ChownExit::Kretprobe => 0,
        },
        args: plan.args,
        off: plan.offsets,
        lower: plan.lower_stack,
        regs: plan.regs,
        skip_returns_of: 0,
    }
}

impl Probes {
    pub fn load(plan: &ProbePlan, filter: &Filter, ring_size: u32) -> Result<Probes> {
        raise_memlock();
        let t0 = std::time::Instant::now();
        let config = Config {
            skip_returns_of: skip_returns_of(std::env::var_os(SKIP_RETURNS_ENV))?,
            ..config(plan, filter, ring_size)
        };
        // The object has no CO-RE relocations: no need to parse the kernel's BTF.
        let mut loader = EbpfLoader::without_kernel_btf();
        log::debug!("load: loader ready in {} us", t0.elapsed().as_micros());
        let t1 = std::time::Instant::now();
        loader.override_global("CONFIG", &config, true);
        loader.map_max_entries("EVENTS", ring_size);
        let bpf = loader
            .load(EBPF_OBJECT)
            .context("loading the eBPF object into the kernel")?;
        log::debug!("load: object and maps in {} us", t1.elapsed().as_micros());
        let mut p = Probes::new(bpf);

        if let Some(ids) = &filter.cgroups {
            p.set_cgroups(ids)?;
        }
        if filter.tree {
            p.raw_tracepoint(&hooks::FORK)?;
        }
        for hook in plan.hooks() {
            // The chown syscalls' return: through fexit where `do_fchownat` takes fentry,
            // else the syscall-exit tracepoints where the kernel has them. Both have no
            // limit on threads in flight, unlike a kretprobe; but a syscall tracepoint puts
            // every thread of the host on the slow syscall path, for every syscall.
            let tracepoints =
                hook == &FCHOWNAT && matches!(plan.chown_exit, ChownExit::Tracepoints { .. });
            let planned = plan.mechanism(hook).kind();
            if tracepoints && planned == Attach::Kprobe {
                // Return first, as with kprobes.
                p.tracepoint(&hooks::CHOWN_EXIT, arch::NATIVE.chown_exits())?;
            }
            let got = p.attach(plan, hook, tracepoints)?;
            if tracepoints && planned == Attach::Fentry && got == Attach::Kprobe {
                // fentry was refused at load: the kprobe's return is the tracepoints'.
                p.tracepoint(&hooks::CHOWN_EXIT, arch::NATIVE.chown_exits())?;
            }
        }
        // After the probes, whose failures say more (no kprobes, no fentry); a thread
        // that ends before this leaves its entries to `reap_exited`.
        p.raw_tracepoint(&hooks::THREAD_EXIT)?;
        p.raw_tracepoint(&hooks::CGROUP_MKDIR)?;
        Ok(p)
    }

    fn new(bpf: Ebpf) -> Probes {
        Probes {
            bpf,
            reaped: 0,
            mechanisms: BTreeMap::new(),
            btf_objects: BTreeMap::new(),
        }
    }

    /// The mechanism each attached function got: "fentry" (with fexit where the
    /// return matters) or "kprobe" (with a kretprobe).
    pub fn mechanisms(&self) -> &BTreeMap<&'static str, Attach> {
        &self.mechanisms
    }

    /// Attaches a row of the probe table by the plan's mechanism, and says which it got;
    /// with `kprobe_entry_only`, a kprobe goes without its return program (the caller
    /// sees the return elsewhere).
    fn attach(
        &mut self,
        plan: &ProbePlan,
        hook: &'static FuncHook,
        kprobe_entry_only: bool,
    ) -> Result<Attach> {
        let t0 = std::time::Instant::now();
        match plan.mechanism(hook) {
            Mechanism::Fentry(btf) => match self.fentry(hook, btf) {
                Ok(()) => {
                    log::debug!(
                        "{}: fentry{} (BTF id {} in {}), loaded and attached in {} us",
                        hook.func,
                        if hook.fexit.is_none() { "" } else { " + fexit" },
                        btf.id,
                        btf.module.as_deref().unwrap_or("vmlinux"),
                        t0.elapsed().as_micros()
                    );
                    self.mechanisms.insert(hook.func, Attach::Fentry);
                    return Ok(Attach::Fentry);
                }
                Err(e) if plan.mode == ProbeMode::Fentry => {
                    return Err(e.context("--probes fentry"));
                }
                Err(e) => {
                    let kprobes = host::kprobe_support();
                    if kprobes.status == host::Status::Missing {
                        // Nothing to fall back on: say both.
                        return Err(e.context(host::no_fallback(hook.func, &kprobes)));
                    }
                    log::info!("{}: fentry refused ({e:#}); using a kprobe", hook.func)
                }
            },
            Mechanism::Kprobe { why_not_fentry } if why_not_fentry.is_empty() => {
                log::debug!("{}: kprobe (--probes kprobe)", hook.func)
            }
            Mechanism::Kprobe { why_not_fentry } => {
                log::debug!("{}: kprobe, not fentry: {why_not_fentry}", hook.func)
            }
        }
        if !kprobe_entry_only {
            self.ret_probe(hook)?;
        }
        self.kprobe(hook.entry, hook.func)?;
        self.mechanisms.insert(hook.func, Attach::Kprobe);
        log::debug!(
            "{}: kprobe loaded and attached in {} us",
            hook.func,
            t0.elapsed().as_micros()
        );
        Ok(Attach::Kprobe)
    }

    /// The fd of kernel BTF object `module` (or `None` for vmlinux), for a load.
    fn btf_object(&mut self, module: Option<&str>) -> Result<Option<OwnedFd>> {
        let Some(name) = module else { return Ok(None) };
        if !self.btf_objects.contains_key(name) {
            let fd = kernel_btf_fd(name)
                .with_context(|| format!("looking up the kernel BTF object {name}"))?
                .ok_or_else(|| anyhow!("the kernel has no BTF object named {name}"))?;
            self.btf_objects.insert(name.to_string(), fd);
        }
        Ok(Some(self.btf_objects[name].try_clone()?))
    }

    /// Loads and attaches the fexit (return first, as with kprobes) and fentry programs
    /// of `hook`. On failure nothing of `hook` stays attached.
    fn fentry(&mut self, hook: &FuncHook, btf: &BtfFunc) -> Result<()> {
        let module = btf.module.as_deref();
        let exit = match hook.fexit {
            Some(name) => {
                let fd = self.btf_object(module)?;
                let prog: &mut FExit = self.program(name)?;
                prog.load_with_btf_id(btf.id, fd)
                    .with_context(|| format!("loading fexit program {name} for {}", hook.func))?;
                let link = prog
                    .attach()
                    .with_context(|| format!("attaching fexit program {name} to {}", hook.func))?;
                Some((name, link))
            }
            None => None,
        };
        let fd = self.btf_object(module)?;
        let name = hook.fentry;
        let prog: &mut FEntry = self.program(name)?;
        let attached = prog
            .load_with_btf_id(btf.id, fd)
            .with_context(|| format!("loading fentry program {name} for {}", hook.func))
            .and_then(|()| {
                prog.attach()
                    .with_context(|| format!("attaching fentry program {name} to {}", hook.func))
            });
        if let Err(e) = attached {
            if let Some((exit_name, link)) = exit {
                let prog: &mut FExit = self.program(exit_name)?;
                prog.detach(link)
                    .with_context(|| format!("detaching {exit_name}"))?;
            }
            return Err(e);
        }
        Ok(())
    }

    /// The object loaded with `config`, for trying whether programs load and attach
    /// here; nothing is attached yet.
    fn loaded_with(config: &Config) -> Result<Probes> {
        raise_memlock();
        // The object has no CO-RE relocations: no need to parse the kernel's BTF.
        let mut loader = EbpfLoader::without_kernel_btf();
        loader.override_global("CONFIG", config, true);
        let bpf = loader
            .load(EBPF_OBJECT)
            .context("loading the eBPF object into the kernel")?;
        Ok(Probes::new(bpf))
    }

    /// Loads the object and attaches a kprobe and a kretprobe to `do_fchownat` (which
    /// every supported kernel has), then detaches them: whether kprobes work here, tried
    /// rather than guessed. Returns the function tried.
    pub fn try_attach() -> Result<&'static str> {
        // All zero: no filters, and no typed reads (`Regs::enabled` 0), which a kprobe
        // program makes only where the plan's offsets say.
        let mut p = Probes::loaded_with(&Config::default())?;
        p.ret_probe(&FCHOWNAT)?;
        p.kprobe(FCHOWNAT.entry, FCHOWNAT.func)?;
        Ok(FCHOWNAT.func)
    }

    /// Loads and attaches the fentry and fexit programs of each of `funcs` (with their
    /// BTF), then detaches them: whether this kernel takes fentry/fexit, tried. With
    /// `plan`'s offsets and no filters, as a start loads them: the verifier checks the
    /// fields they load against the kernel's BTF.
    pub fn try_fentry(plan: &ProbePlan, funcs: &[(&'static FuncHook, BtfFunc)]) -> Result<()> {
        // Ring size 0: its only use is the wake-up threshold, and nothing is sent here.
        let mut p = Probes::loaded_with(&config(plan, &Filter::default(), 0))?;
        if funcs.is_empty() {
            bail!("no function to try");
        }
        for (hook, btf) in funcs {
            p.fentry(hook, btf)?;
        }
        Ok(())
    }

    fn program<'a, T>(&'a mut self, name: &str) -> Result<&'a mut T>
    where
        &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let prog = self
            .bpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("eBPF program {name} missing from the object"))?;
        prog.try_into()
            .map_err(|e| anyhow!("eBPF program {name} has an unexpected type: {e}"))
    }

    /// A row's return kprobe: attached before its entry, so that no entry is seen
    /// without its return.
    fn ret_probe(&mut self, hook: &FuncHook) -> Result<()> {
        match hook.ret {
            Some(ret) => self.kprobe(ret, hook.func),
            None => Ok(()),
        }
    }

    /// `hook`'s program, attached to `events` (those of `hook.events` the kernel has).
    fn tracepoint(&mut self, hook: &TracepointHook, events: &[&str]) -> Result<()> {
        let t0 = std::time::Instant::now();
        let tp: &mut TracePoint = self.program(hook.program)?;
        tp.load()
            .with_context(|| format!("loading eBPF program {}", hook.program))?;
        for event in events {
            tp.attach(hook.category, event)
                .with_context(|| format!("attaching to tracepoint {}:{event}", hook.category))?;
        }
        log::debug!(
            "{}: tracepoint program loaded and attached in {} us",
            hook.program,
            t0.elapsed().as_micros()
        );
        Ok(())
    }

    fn raw_tracepoint(&mut self, hook: &RawTracepointHook) -> Result<()> {
        let tp: &mut RawTracePoint = self.program(hook.program)?;
        tp.load()
            .with_context(|| format!("loading eBPF program {}", hook.program))?;
        tp.attach(hook.event)
            .with_context(|| format!("attaching to raw tracepoint {}", hook.event))?;
        Ok(())
    }

    /// Loads `prog` (once) and attaches it to `func`; one program may serve several
    /// functions.
    fn kprobe(&mut self, prog: &str, func: &str) -> Result<()> {
        let kp: &mut KProbe = self.program(prog)?;
        if kp.fd().is_err() {
            kp.load()
                .with_context(|| format!("loading eBPF program {prog}"))?;
        }
        kp.attach(func, 0)
            .with_context(|| format!("attaching {prog} to kernel function {func}"))?;
        Ok(())
    }

    fn set_cgroups(&mut self, ids: &[u64]) -> Result<()> {
        let map = self
            .bpf
            .map_mut("CGROUPS")
            .ok_or_else(|| anyhow!("CGROUPS map missing"))?;
        let mut m: HashMap<&mut MapData, u64, u8> =
            HashMap::try_from(map).context("CGROUPS map")?;
        for id in ids {
            m.insert(id, 1, 0)
                .with_context(|| format!("adding cgroup {id} to the filter"))?;
        }
        Ok(())
    }

    /// Adds a process (and, through the fork tracepoint, its future children) to the
    /// traced tree.
    pub fn track(&mut self, pid: u32) -> Result<()> {
        self.tracked()?
            .insert(pid, 1, 0)
            .with_context(|| format!("adding pid {pid} to the traced tree"))
    }

    pub fn untrack(&mut self, pid: u32) -> Result<()> {
        self.tracked()?
            .remove(&pid)
            .with_context(|| format!("removing pid {pid} from the traced tree"))
    }

    fn tracked(&mut self) -> Result<HashMap<&mut MapData, u32, u8>> {
        let map = self
            .bpf
            .map_mut("TRACKED")
            .ok_or_else(|| anyhow!("TRACKED map missing"))?;
        HashMap::try_from(map).context("TRACKED map")
    }

    /// The event ring buffer; can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .bpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow!("EVENTS ring buffer missing"))?;
        RingBuf::try_from(map).context("EVENTS ring buffer")
    }

    pub fn take_logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        aya_log::EbpfLogger::init(&mut self.bpf).ok()
    }

    /// Entries left in the per-thread state maps and the scratch records not kept for
    /// their threads' next ones (`SCRATCH_KEPT`, until the thread ends): zero once no
    /// traced task is inside a probed function.
    pub fn state_entries(&self) -> Result<usize> {
        let scratch = self
            .keys::<u32, CopyUpEvent>("EVENT_SCRATCH")?
            .saturating_sub(self.keys::<u32, u8>("SCRATCH_KEPT")?);
        Ok(self.keys::<u64, InFlight>("INFLIGHT")?
            + self.keys::<u32, SyscallState>("SYSCALLS")?
            + self.keys::<u32, OpState>("OPS")?
            + scratch)
    }

    /// Removes the per-thread entries of threads that no longer exist, and counts the
    /// copy-ups among them as missed returns: a kretprobe the kernel skipped (all its
    /// instances in use) leaves its entry behind. A syscall's or operation's entry is
    /// not a copy-up of its own, so it is removed without a count. Run once the traced
    /// threads are gone (the command has exited).
    pub fn reap_exited(&mut self) -> Result<u64> {
        let reaped = self.reap::<u64, InFlight>("INFLIGHT", inflight_tid)?;
        self.reap::<u32, SyscallState>("SYSCALLS", |tid| tid)?;
        self.reap::<u32, OpState>("OPS", |tid| tid)?;
        // Kept scratch entries go at their thread's end, unless that program's run was
        // skipped.
        self.reap::<u32, u8>("SCRATCH_KEPT", |tid| tid)?;
        self.reap::<u32, CopyUpEvent>("EVENT_SCRATCH", |tid| tid)?;
        self.reaped += reaped;
        Ok(reaped)
    }

    /// `reap_exited` for one map, whose keys name a tid through `tid`.
    fn reap<K: aya::Pod, V: aya::Pod>(&mut self, name: &str, tid: fn(K) -> u32) -> Result<u64> {
        let map = self
            .bpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("{name} map missing"))?;
        let mut m: HashMap<_, K, V> =
            HashMap::try_from(map).with_context(|| format!("{name} map"))?;
        let gone: Vec<K> = m
            .keys()
            .filter_map(|k| k.ok())
            .filter(|&k| !std::path::Path::new(&format!("/proc/{}", tid(k))).exists())
            .collect();
        for tid in &gone {
            let _ = m.remove(tid);
        }
        Ok(gone.len() as u64)
    }

    fn keys<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> Result<usize> {
        let map = self
            .bpf
            .map(name)
            .ok_or_else(|| anyhow!("{name} map missing"))?;
        let m: HashMap<_, K, V> = HashMap::try_from(map).with_context(|| format!("{name} map"))?;
        Ok(m.keys().count())
    }

    /// Instruction pointers of a recorded stack, innermost first.
    pub fn stack_frames(&self, id: i32) -> Option<Vec<u64>> {
        let map = self.bpf.map("STACKS")?;
        let stacks: StackTraceMap<_> = StackTraceMap::try_from(map).ok()?;
        let trace = stacks.get(&(id as u32), 0).ok()?;
        Some(trace.frames().iter().map(|f| f.ip).collect())
    }

    pub fn losses(&self) -> Result<Losses> {
        let map = self
            .bpf
            .map("COUNTERS")
            .ok_or_else(|| anyhow!("COUNTERS map missing"))?;
        let counters: PerCpuArray<_, u64> = PerCpuArray::try_from(map)?;
        let sum = |idx: u32| -> Result<u64> { Ok(counters.get(&idx, 0)?.iter().copied().sum()) };
        let skipped_by = self.skipped_by();
        Ok(Losses {
            lost_events: sum(counter::LOST_EVENTS)?,
            lost_state: sum(counter::LOST_STATE)?,
            missed_returns: sum(counter::MISSED_RETURNS)? + self.reaped,
            skipped_runs: skipped_by.values().sum(),
            skipped_by,
        })
    }

    /// `recursion_misses` of each of our loaded programs that has any: fentry/fexit from
    /// 5.12, kprobe and tracepoint programs from 6.7, which the kernel skips while
    /// another of them runs on that CPU (a kretprobe's own misses are `missed_returns`).
    fn skipped_by(&self) -> BTreeMap<String, u64> {
        self.bpf
            .programs()
            .filter_map(|(name, p)| Some((name, p.info().ok()?.recursion_misses())))
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| (name.to_string(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The fault-injection setting is a pid or absent; anything else is refused.
    #[test]
    fn skip_returns_of_is_a_pid() {
        assert_eq!(skip_returns_of(None).unwrap(), 0);
        assert_eq!(skip_returns_of(Some("30001".into())).unwrap(), 30001);
        let e = skip_returns_of(Some("x".into())).unwrap_err().to_string();
        assert!(
            e.contains("COPYUP_TRACE_SKIP_RETURNS_OF=\"x\" is not a pid"),
            "{e}"
        );
    }

    /// The object defines exactly the programs the probe table names: the table and the
    /// kernel side cannot drift apart.
    #[test]
    fn object_matches_the_probe_table() {
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the eBPF object parses");
        let in_object: BTreeSet<&str> = obj.programs.keys().map(String::as_str).collect();
        let in_table: BTreeSet<&str> = hooks::programs().collect();
        assert_eq!(in_object, in_table);
    }

    /// Every program is one function: no BPF-to-BPF call (an out-of-line closure, a
    /// `memset` libcall). Verifiers before 6.4 stop pruning states at such a call, and
    /// 6.1 verified six times the instructions for it (see BENCHMARKS.md).
    #[test]
    fn programs_call_no_subprograms() {
        use aya_obj::generated::{BPF_CALL, BPF_JMP, BPF_PSEUDO_CALL};
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the eBPF object parses");
        let mut calls = Vec::new();
        for (name, prog) in &obj.programs {
            let f = &obj.functions[&prog.function_key()];
            for (i, insn) in f.instructions.iter().enumerate() {
                if u32::from(insn.code) == BPF_JMP | BPF_CALL
                    && u32::from(insn.src_reg()) == BPF_PSEUDO_CALL
                {
                    calls.push(format!("{name} at instruction {i}"));
                }
            }
        }
        calls.sort();
        assert!(calls.is_empty(), "subprogram calls: {calls:?}");
    }
}
