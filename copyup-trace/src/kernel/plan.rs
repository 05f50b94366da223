//! Decides, from facts about the running kernel, which rows of the probe table
//! (`copyup_trace_common::hooks`) to attach, through which mechanism each (fentry/fexit
//! where the kernel can, else kprobes), and where their arguments and struct fields
//! are (`copyup_trace_common::config`). Pure logic: the facts are gathered by
//! `kernel.rs`, the result is applied by `probes.rs`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use copyup_trace_common::{
    arch,
    config::{Args, LowerStack, Offsets, Regs},
    hooks::{
        self, FuncHook, COPY_UP_DATA, COPY_UP_END, COPY_UP_FILE, COPY_UP_ONE, FCHOWNAT,
        OTHER_XATTR_SET, SETATTR, XATTR_SET,
    },
    kver,
};

/// What is known about one kernel function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuncFacts {
    /// In `/proc/kallsyms` under exactly this name, so a kprobe can attach to it.
    pub attachable: bool,
    /// Parameter names from BTF, in order; `None` when BTF has no prototype for it.
    pub params: Option<Vec<String>>,
    /// Where fentry/fexit can find the function: its BTF `FUNC`, when kernel BTF that
    /// the kernel can attach through describes it.
    pub btf: Option<BtfFunc>,
}

/// A function's BTF type id, and the kernel BTF object it is in (`None`: vmlinux; else
/// a module's name). Split module BTF ids continue after vmlinux's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfFunc {
    pub id: u32,
    pub module: Option<String>,
}

/// `--probes`: which mechanism the functions get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeMode {
    /// fentry/fexit for each function that can take it, kprobes for the others.
    #[default]
    Auto,
    /// fentry/fexit for every function, or refuse to start.
    Fentry,
    /// kprobes and kretprobes for every function.
    Kprobe,
}

/// How one function is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    Fentry(BtfFunc),
    /// With why fentry was not used (empty with `--probes kprobe`).
    Kprobe {
        why_not_fentry: String,
    },
}

impl Mechanism {
    pub fn kind(&self) -> Attach {
        match self {
            Mechanism::Fentry(_) => Attach::Fentry,
            Mechanism::Kprobe { .. } => Attach::Kprobe,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// How a kernel function was attached, as the outputs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attach {
    /// fentry, and fexit where the return matters.
    Fentry,
    /// kprobe, and kretprobe where the return matters.
    Kprobe,
}

impl Attach {
    pub fn name(self) -> &'static str {
        match self {
            Attach::Fentry => "fentry",
            Attach::Kprobe => "kprobe",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// Functions we may probe (the kernel functions of `hooks::FUNCS`), by name.
    pub funcs: BTreeMap<String, FuncFacts>,
    pub offsets: Offsets,
    /// `ovl_copy_up_ctx.stat` + `kstat.size` / `kstat.mode`, when overlay BTF has them.
    pub ctx_stat: Option<CtxStat>,
    /// Offset of `ret` in the `syscalls:sys_exit_{chown,lchown,fchownat}` records, when
    /// all three tracepoints exist (and agree).
    pub chown_exit_ret_offset: Option<u32>,
    /// `/sys/kernel/btf/overlay` exists: overlay is a module with its own BTF.
    pub overlay_btf: bool,
    /// Where a dentry's lower stack is, to read the layer a copy-up copies from.
    pub lower_stack: LowerStack,
    pub lower_stack_from: LayoutFrom,
    /// `pt_regs` offsets of the syscall number, user ip and user sp, from BTF.
    pub regs: Option<Regs>,
}

/// Where the layout of overlay's lower stack came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LayoutFrom {
    /// Overlay's BTF.
    Btf,
    /// The layout of the kernels from 5.7 to 6.4, for one whose overlay has no BTF.
    KnownLine,
    /// Neither: copy-ups are not named after their layer.
    #[default]
    Unknown,
}

/// Offsets of `c->stat.size` and `c->stat.mode` in `struct ovl_copy_up_ctx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtxStat {
    pub size_off: u32,
    pub mode_off: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChownExit {
    Tracepoints { ret_offset: u32 },
    Kretprobe,
}

/// Where the data-copy probe reads the number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenSource {
    /// A plain argument, by index.
    Arg(u32),
    /// `ovl_copy_up_data(c, ...)`: `c->stat.size`, counted only for regular files.
    CtxStat { ctx_arg: u32, stat: CtxStat },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataProbe {
    pub hook: &'static FuncHook,
    pub len: LenSource,
}

/// Everything `probes.rs` needs to configure and attach the eBPF programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    /// `do_fchownat` can be probed; otherwise chown copy-ups are named by their
    /// setattr mask only.
    pub fchownat: bool,
    /// Where the chown syscalls' returns are seen when `do_fchownat` is on a kprobe: the
    /// syscall-exit tracepoints when the kernel has them (no limit on threads in flight,
    /// unlike a kretprobe, whose few instances a burst of threads can exhaust), else a
    /// kretprobe. On fentry its fexit sees them, without the host-wide cost of a syscall
    /// tracepoint.
    pub chown_exit: ChownExit,
    /// `ovl_setattr` can be probed (`attr` at `args.setattr_attr`).
    pub setattr: bool,
    /// `ovl_copy_up_end` can be probed: a copy-up that returns 0 without reaching it
    /// waited for another thread's copy-up.
    pub copy_up_end: bool,
    pub data: DataProbe,
    /// Overlayfs operations to attach to, the xattr setter (`value` at
    /// `args.xattr_value`) among them.
    pub ops: Vec<&'static FuncHook>,
    /// Argument positions for the kernel side.
    pub args: Args,
    pub offsets: Offsets,
    pub lower_stack: LowerStack,
    /// Where `CallId` is read; `enabled` 0 before 5.15.
    pub regs: Regs,
    /// The mechanism of every function in `hooks()`, by function name.
    pub mechanisms: BTreeMap<&'static str, Mechanism>,
    /// `--probes`: with `Auto`, a function whose fentry the kernel refuses at load or
    /// attach time (EPERM, lockdown) falls back to a kprobe there.
    pub mode: ProbeMode,
}

impl ProbePlan {
    /// The rows of the probe table this plan attaches, in attach order: the context
    /// (syscall, operations) before the copy-up itself, so a copy-up that starts during
    /// attachment never sees a half-configured set.
    pub fn hooks(&self) -> impl Iterator<Item = &'static FuncHook> + '_ {
        let chown = self.fchownat.then_some(&FCHOWNAT);
        let setattr = self.setattr.then_some(&SETATTR);
        let end = self.copy_up_end.then_some(&COPY_UP_END);
        chown
            .into_iter()
            .chain(setattr)
            .chain(self.ops.iter().copied())
            .chain([self.data.hook])
            .chain(end)
            .chain([&COPY_UP_ONE])
    }
}

/// Why kernel stacks recorded on this kernel stop short, if they do: before 5.15 (x86)
/// or 5.16 (arm64, `arch::Arch::kretprobe_unwind`) the unwinder cannot get past a
/// kretprobe's trampoline, so the frames above a function with a return probe
/// (`ovl_setattr`, `ovl_open`, ...) are lost.
pub fn stack_limit(release: &str) -> Option<String> {
    let fixed = arch::NATIVE.kretprobe_unwind();
    let (major, minor) = fixed;
    match kver::parse(release) {
        Some(v) if v < fixed => Some(format!(
            "kernel {release} cannot unwind through kretprobe trampolines (before \
             {major}.{minor}): kernel stacks end at kretprobe_trampoline above probed \
             overlayfs functions"
        )),
        _ => None,
    }
}

impl ProbePlan {
    pub fn mechanism(&self, hook: &FuncHook) -> &Mechanism {
        &self.mechanisms[hook.func]
    }

    /// Why this plan needs kprobe support: the first function it puts on a kprobe, and
    /// why not fentry. `None` when every function takes fentry/fexit, so that a kernel
    /// without kprobes can still be traced.
    pub fn kprobes_needed(&self) -> Option<String> {
        let (func, m) = self
            .mechanisms
            .iter()
            .find(|(_, m)| m.kind() == Attach::Kprobe)?;
        Some(match m {
            Mechanism::Kprobe { why_not_fentry } if !why_not_fentry.is_empty() => {
                format!("{func} cannot take fentry: {why_not_fentry}")
            }
            _ => "--probes kprobe".to_string(),
        })
    }

    /// Where the plan reads the argument that the fentry program of `hook` reads at a
    /// fixed index (`FuncHook::fentry_arg`).
    fn planned_index(&self, hook: &FuncHook) -> Option<u32> {
        if hook == &SETATTR {
            Some(self.args.setattr_attr)
        } else if hook == &XATTR_SET || hook == &OTHER_XATTR_SET {
            Some(self.args.xattr_value)
        } else if hook == self.data.hook {
            match (hook == &COPY_UP_DATA, self.data.len) {
                (false, LenSource::Arg(i)) => Some(i),
                (true, LenSource::CtxStat { ctx_arg, .. }) => Some(ctx_arg),
                _ => None,
            }
        } else {
            None
        }
    }
}

/// Why kernel `release` on `arch` cannot attach BPF trampolines to kernel functions, if
/// it cannot (arm64 before 6.4).
fn no_trampolines(release: &str, arch: arch::Arch) -> Option<String> {
    let (major, minor) = arch.trampoline_attach();
    (!kver::at_least(release, (major, minor))).then(|| {
        format!(
            "kernel {release} is older than {major}.{minor}, from which BPF trampolines \
             attach to kernel functions on {} (ftrace direct calls)",
            arch.name()
        )
    })
}

/// Whether `hook` can take fentry/fexit on this kernel, and if not, why.
fn fentry_for(facts: &KernelFacts, plan: &ProbePlan, hook: &FuncHook) -> Result<BtfFunc, String> {
    match kver::parse(&facts.release) {
        Some(v) if v >= kver::FEXIT_RET => {}
        _ => {
            return Err(format!(
                "kernel {} is older than {}.{}: fexit cannot read the return value \
                 (no bpf_get_func_ret)",
                facts.release,
                kver::FEXIT_RET.0,
                kver::FEXIT_RET.1
            ))
        }
    }
    if let Some(why) = no_trampolines(&facts.release, arch::NATIVE) {
        return Err(why);
    }
    let f = facts.funcs.get(hook.func);
    let Some(btf) = f.and_then(|f| f.btf.clone()) else {
        return Err(
            if hooks::in_overlay_module(hook.func) && !facts.overlay_btf {
                "no overlay module BTF (/sys/kernel/btf/overlay) describes it".to_string()
            } else {
                "not in kernel BTF".to_string()
            },
        );
    };
    if let Some((param, index)) = hook.fentry_arg {
        if plan.planned_index(hook) != Some(index) {
            return Err(format!(
                "its `{param}` is not argument {index}, the only position its fentry \
                 program reads"
            ));
        }
    }
    Ok(btf)
}

impl KernelFacts {
    fn func(&self, hook: &FuncHook) -> Option<&FuncFacts> {
        self.funcs.get(hook.func).filter(|f| f.attachable)
    }

    /// Index of parameter `param` of `func` from BTF, else `fallback(version)`.
    fn arg_index(
        &self,
        func: &FuncFacts,
        param: &str,
        fallback: impl FnOnce((u32, u32)) -> Option<u32>,
    ) -> Option<u32> {
        if let Some(params) = &func.params {
            return params.iter().position(|p| p == param).map(|i| i as u32);
        }
        fallback(kver::parse(&self.release)?)
    }
}

/// Decides the probe plan, or says precisely why this kernel cannot be traced (or, with
/// `ProbeMode::Fentry`, why a function cannot take fentry).
pub fn decide(facts: &KernelFacts, mode: ProbeMode) -> Result<ProbePlan> {
    let mut plan = decide_kprobes(facts)?;
    plan.mode = mode;
    let hooks: Vec<&'static FuncHook> = plan.hooks().collect();
    for hook in hooks {
        let m = match mode {
            ProbeMode::Kprobe => Mechanism::Kprobe {
                why_not_fentry: String::new(),
            },
            ProbeMode::Auto | ProbeMode::Fentry => match fentry_for(facts, &plan, hook) {
                Ok(btf) => Mechanism::Fentry(btf),
                Err(why) if mode == ProbeMode::Fentry => {
                    bail!("--probes fentry: {} cannot take fentry: {why}", hook.func)
                }
                Err(why) => Mechanism::Kprobe {
                    why_not_fentry: why,
                },
            },
        };
        plan.mechanisms.insert(hook.func, m);
    }
    Ok(plan)
}

/// The rows, argument positions and offsets, every function with a kprobe.
fn decide_kprobes(facts: &KernelFacts) -> Result<ProbePlan> {
    let one_name = COPY_UP_ONE.func;
    let Some(one) = facts.func(&COPY_UP_ONE) else {
        bail!(
            "overlayfs function {one_name} is not in /proc/kallsyms: is the overlay module loaded, \
             and is this kernel's overlayfs one copyup-trace knows (4.x to 6.x)?"
        );
    };
    // (parent, dentry, flags) on every kernel that has the function.
    let Some(copy_up_dentry) = facts.arg_index(one, "dentry", |_| Some(1)) else {
        bail!("{one_name} in this kernel's BTF has no `dentry` parameter");
    };
    if copy_up_dentry != 1 {
        bail!("{one_name} takes `dentry` as argument {copy_up_dentry}; copyup-trace knows only (parent, dentry, flags)");
    }

    let setattr_attr = match facts.func(&SETATTR) {
        // (dentry, attr) before 5.12; (user_ns|idmap, dentry, attr) since.
        Some(f) => Some(
            facts
                .arg_index(f, "attr", |v| {
                    Some(if v < kver::SETATTR_USERNS_ARG { 1 } else { 2 })
                })
                .ok_or_else(|| {
                    anyhow!(
                        "{} in this kernel's BTF has no `attr` parameter",
                        SETATTR.func
                    )
                })?,
        ),
        None => None,
    };
    if let Some(i) = setattr_attr {
        if !(1..=2).contains(&i) {
            bail!(
                "{} takes `attr` as argument {i}; copyup-trace knows only positions 1 and 2",
                SETATTR.func
            );
        }
    }
    let data = decide_data_probe(facts)?;
    match data.len {
        LenSource::Arg(2 | 3) => {}
        LenSource::CtxStat { ctx_arg: 0, .. } => {}
        other => bail!(
            "{} has its length where copyup-trace cannot read it ({other:?})",
            data.hook.func
        ),
    }

    let mut ops: Vec<&'static FuncHook> = hooks::OPS
        .iter()
        .filter(|h| facts.func(h).is_some())
        .collect();
    let xattr = decide_xattr(facts);
    if let Some((hook, _)) = xattr {
        ops.push(hook);
    }

    let (data_len, data_len_from_ctx, ctx) = match data.len {
        LenSource::Arg(i) => (i, 0, None),
        LenSource::CtxStat { ctx_arg, stat } => (ctx_arg, 1, Some(stat)),
    };
    Ok(ProbePlan {
        ops,
        fchownat: facts.func(&FCHOWNAT).is_some(),
        chown_exit: match facts.chown_exit_ret_offset {
            Some(ret_offset) => ChownExit::Tracepoints { ret_offset },
            None => ChownExit::Kretprobe,
        },
        setattr: setattr_attr.is_some(),
        copy_up_end: facts.func(&COPY_UP_END).is_some(),
        data,
        args: Args {
            copy_up_dentry,
            setattr_attr: setattr_attr.unwrap_or(0),
            xattr_value: xattr.map_or(0, |(_, i)| i),
            data_len,
            data_len_from_ctx,
            ctx_stat_size: ctx.map_or(0, |c| c.size_off),
            ctx_stat_mode: ctx.map_or(0, |c| c.mode_off),
        },
        offsets: facts.offsets,
        lower_stack: facts.lower_stack,
        regs: match (facts.regs, kver::parse(&facts.release)) {
            (Some(r), Some(v)) if v >= kver::TASK_PT_REGS => Regs { enabled: 1, ..r },
            _ => Regs::default(),
        },
        mechanisms: BTreeMap::new(),
        mode: ProbeMode::Kprobe,
    })
}

/// Where setting or removing an xattr can be seen, and the position of `value`:
/// `ovl_xattr_set(dentry, inode, name, value, ...)`, or the handler
/// `ovl_other_xattr_set(handler, ns|idmap, dentry, inode, name, value, ...)` where the
/// former was inlined.
fn decide_xattr(facts: &KernelFacts) -> Option<(&'static FuncHook, u32)> {
    use hooks::fentry_arg::{OTHER_XATTR_SET_VALUE, XATTR_SET_VALUE};
    for (hook, fallback) in [
        (&XATTR_SET, XATTR_SET_VALUE),
        (&OTHER_XATTR_SET, OTHER_XATTR_SET_VALUE),
    ] {
        let Some(f) = facts.func(hook) else { continue };
        // The kernel side knows `value` at these two positions only.
        match facts.arg_index(f, "value", |_| Some(fallback)) {
            Some(i) if i == XATTR_SET_VALUE || i == OTHER_XATTR_SET_VALUE => {
                return Some((hook, i))
            }
            _ => continue,
        }
    }
    None
}

fn decide_data_probe(facts: &KernelFacts) -> Result<DataProbe> {
    // ovl_copy_up_file(ofs, dentry, new_file, len[, datasync]) since 5.10; before that
    // (old, new, len). It is the one function every data copy goes through, on both
    // the O_TMPFILE and the workdir path.
    if let Some(f) = facts.func(&COPY_UP_FILE) {
        let idx = facts
            .arg_index(f, "len", |v| {
                Some(if v < kver::COPY_UP_FILE_OFS_ARG { 2 } else { 3 })
            })
            .ok_or_else(|| anyhow!("{} in BTF has no `len` parameter", COPY_UP_FILE.func))?;
        return Ok(DataProbe {
            hook: &COPY_UP_FILE,
            len: LenSource::Arg(idx),
        });
    }
    // Where ovl_copy_up_file was inlined, ovl_copy_up_data is the data path:
    // (old, new, len) before 5.10, (ofs, old, new, len) in 5.10..6.0, (c, temp) since 6.1.
    let data_name = COPY_UP_DATA.func;
    if let Some(f) = facts.func(&COPY_UP_DATA) {
        let by_arg = |idx| DataProbe {
            hook: &COPY_UP_DATA,
            len: LenSource::Arg(idx),
        };
        let by_ctx = |ctx_arg| -> Result<DataProbe> {
            match facts.ctx_stat {
                Some(stat) => Ok(DataProbe {
                    hook: &COPY_UP_DATA,
                    len: LenSource::CtxStat { ctx_arg, stat },
                }),
                None => bail!(
                    "{data_name} takes a copy-up context, but BTF does not describe \
                     struct ovl_copy_up_ctx"
                ),
            }
        };
        if let Some(params) = &f.params {
            if let Some(i) = params.iter().position(|p| p == "len") {
                return Ok(by_arg(i as u32));
            }
            if let Some(i) = params.iter().position(|p| p == "c") {
                return by_ctx(i as u32);
            }
            bail!("{data_name} in BTF has neither a `len` nor a `c` parameter");
        }
        return match kver::parse(&facts.release) {
            Some(v) if v < kver::COPY_UP_FILE_OFS_ARG => Ok(by_arg(2)),
            Some(v) if v < kver::COPY_UP_DATA_CTX => Ok(by_arg(3)),
            Some(_) => by_ctx(0),
            None => bail!("cannot parse kernel release {:?}", facts.release),
        };
    }
    bail!(
        "neither {} nor {data_name} can be probed on this kernel: \
         the bytes copied cannot be measured",
        COPY_UP_FILE.func
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(params: &[&str]) -> FuncFacts {
        FuncFacts {
            attachable: true,
            params: Some(params.iter().map(|s| s.to_string()).collect()),
            btf: None,
        }
    }

    fn no_btf() -> FuncFacts {
        FuncFacts {
            attachable: true,
            params: None,
            btf: None,
        }
    }

    fn facts(release: &str, funcs: &[(&str, FuncFacts)]) -> KernelFacts {
        KernelFacts {
            release: release.into(),
            funcs: funcs
                .iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect(),
            offsets: Offsets::default(),
            ctx_stat: Some(CtxStat {
                size_off: 136,
                mode_off: 108,
            }),
            chown_exit_ret_offset: Some(16),
            overlay_btf: true,
            lower_stack: LowerStack::default(),
            lower_stack_from: LayoutFrom::Btf,
            regs: Some(Regs {
                enabled: 0,
                nr: 120,
                ip: 128,
                sp: 152,
            }),
        }
    }

    #[test]
    fn chown_exit_prefers_tracepoints() {
        let mut k = facts(
            "6.12.117+deb12-amd64",
            &[
                (COPY_UP_ONE.func, f(&["parent", "dentry", "flags"])),
                (
                    COPY_UP_FILE.func,
                    f(&["ofs", "dentry", "new_file", "len", "datasync"]),
                ),
            ],
        );
        assert_eq!(
            decide(&k, ProbeMode::Kprobe).unwrap().chown_exit,
            ChownExit::Tracepoints { ret_offset: 16 }
        );
        k.chown_exit_ret_offset = None;
        assert_eq!(
            decide(&k, ProbeMode::Kprobe).unwrap().chown_exit,
            ChownExit::Kretprobe
        );
    }

    /// Debian 6.1: overlay is a module with split BTF; ovl_copy_up_file has 4 args.
    #[test]
    fn debian_6_1() {
        let k = facts(
            "6.1.0-41-amd64",
            &[
                (COPY_UP_ONE.func, f(&["parent", "dentry", "flags"])),
                (COPY_UP_FILE.func, f(&["ofs", "dentry", "new_file", "len"])),
                (COPY_UP_DATA.func, f(&["c", "temp"])),
                (COPY_UP_END.func, f(&["dentry"])),
                (SETATTR.func, f(&["mnt_userns", "dentry", "attr"])),
                (
                    FCHOWNAT.func,
                    f(&["dfd", "filename", "user", "group", "flag"]),
                ),
            ],
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        assert_eq!(p.args.copy_up_dentry, 1);
        assert!(p.setattr);
        assert_eq!(p.args.setattr_attr, 2);
        assert!(p.fchownat && p.copy_up_end);
        assert_eq!(
            p.data,
            DataProbe {
                hook: &COPY_UP_FILE,
                len: LenSource::Arg(3)
            }
        );
    }

    /// Debian 6.12: ovl_copy_up_file gained `datasync`; the length is still 4th.
    #[test]
    fn debian_6_12() {
        let k = facts(
            "6.12.57+deb12-amd64",
            &[
                (COPY_UP_ONE.func, f(&["parent", "dentry", "flags"])),
                (
                    COPY_UP_FILE.func,
                    f(&["ofs", "dentry", "new_file", "len", "datasync"]),
                ),
                (SETATTR.func, f(&["idmap", "dentry", "attr"])),
                (
                    FCHOWNAT.func,
                    f(&["dfd", "filename", "user", "group", "flag"]),
                ),
            ],
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        assert_eq!(p.data.len, LenSource::Arg(3));
        assert!(p.setattr);
        assert_eq!(p.args.setattr_attr, 2);
        assert!(!p.copy_up_end);
    }

    /// 6.18 (the build host's BTF): same shapes as 6.12.
    #[test]
    fn host_6_18() {
        let k = facts(
            "6.18.44",
            &[
                (COPY_UP_ONE.func, f(&["parent", "dentry", "flags"])),
                (
                    COPY_UP_FILE.func,
                    f(&["ofs", "dentry", "new_file", "len", "datasync"]),
                ),
                (COPY_UP_DATA.func, f(&["c", "temp"])),
                (SETATTR.func, f(&["idmap", "dentry", "attr"])),
            ],
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        assert_eq!(p.args.copy_up_dentry, 1);
        assert_eq!(p.data.hook, &COPY_UP_FILE);
        assert!(!p.fchownat);
    }

    /// Without ovl_copy_up_file, ovl_copy_up_data's form follows the version.
    #[test]
    fn data_fallback_by_version_without_btf() {
        for (release, want) in [
            ("5.4.0-100-generic", LenSource::Arg(2)),
            ("5.15.0-91-generic", LenSource::Arg(3)),
            (
                "6.1.0-41-amd64",
                LenSource::CtxStat {
                    ctx_arg: 0,
                    stat: CtxStat {
                        size_off: 136,
                        mode_off: 108,
                    },
                },
            ),
        ] {
            let k = facts(
                release,
                &[
                    (COPY_UP_ONE.func, no_btf()),
                    (COPY_UP_DATA.func, no_btf()),
                    (SETATTR.func, no_btf()),
                ],
            );
            let p = decide(&k, ProbeMode::Kprobe).unwrap();
            assert_eq!(p.data.hook, &COPY_UP_DATA, "{release}");
            assert_eq!(p.data.len, want, "{release}");
        }
    }

    #[test]
    fn setattr_arity_by_version_without_btf() {
        for (release, want) in [("5.4.0", 1), ("5.12.0", 2), ("6.1.0-41-amd64", 2)] {
            let k = facts(
                release,
                &[
                    (COPY_UP_ONE.func, no_btf()),
                    (COPY_UP_FILE.func, no_btf()),
                    (SETATTR.func, no_btf()),
                ],
            );
            assert_eq!(
                decide(&k, ProbeMode::Kprobe).unwrap().args.setattr_attr,
                want,
                "{release}"
            );
        }
    }

    #[test]
    fn ctx_form_needs_struct_offsets() {
        let mut k = facts(
            "6.1.0",
            &[
                (COPY_UP_ONE.func, no_btf()),
                (COPY_UP_DATA.func, f(&["c", "temp"])),
            ],
        );
        k.ctx_stat = None;
        let err = decide(&k, ProbeMode::Kprobe).unwrap_err().to_string();
        assert!(err.contains("ovl_copy_up_ctx"), "{err}");
    }

    #[test]
    fn missing_copy_up_one_is_explained() {
        let k = facts("6.1.0", &[(COPY_UP_FILE.func, no_btf())]);
        let err = decide(&k, ProbeMode::Kprobe).unwrap_err().to_string();
        assert!(err.contains("ovl_copy_up_one"), "{err}");
        assert!(err.contains("overlay module"), "{err}");
    }

    #[test]
    fn unattachable_functions_are_ignored() {
        let mut k = facts(
            "6.12.0",
            &[(COPY_UP_ONE.func, no_btf()), (COPY_UP_DATA.func, no_btf())],
        );
        k.funcs.insert(
            COPY_UP_FILE.func.into(),
            FuncFacts {
                attachable: false,
                params: Some(vec![
                    "ofs".into(),
                    "dentry".into(),
                    "new_file".into(),
                    "len".into(),
                ]),
                btf: None,
            },
        );
        assert_eq!(
            decide(&k, ProbeMode::Kprobe).unwrap().data.hook,
            &COPY_UP_DATA
        );
    }

    /// Argument positions reach the kernel side through `Config::args`: one program
    /// per function whatever the kernel.
    #[test]
    fn argument_positions_follow_the_version() {
        let k = facts(
            "5.4.0",
            &[
                (COPY_UP_ONE.func, no_btf()),
                (COPY_UP_DATA.func, no_btf()),
                (SETATTR.func, no_btf()),
            ],
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        assert!(p.setattr);
        assert_eq!((p.args.setattr_attr, p.args.data_len), (1, 2));
        assert_eq!(p.args.data_len_from_ctx, 0);
        let k = facts(
            "6.1.0",
            &[(COPY_UP_ONE.func, no_btf()), (COPY_UP_DATA.func, no_btf())],
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        assert!(!p.setattr);
        assert_eq!(p.args.data_len_from_ctx, 1);
        assert_eq!((p.args.ctx_stat_size, p.args.ctx_stat_mode), (136, 108));
        let k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE.func, no_btf()),
                (COPY_UP_FILE.func, no_btf()),
                (SETATTR.func, no_btf()),
            ],
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        assert_eq!((p.args.setattr_attr, p.args.data_len), (2, 3));
    }

    #[test]
    fn unknown_argument_positions_are_refused() {
        let k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE.func, f(&["dentry", "flags"])),
                (COPY_UP_FILE.func, no_btf()),
            ],
        );
        assert!(decide(&k, ProbeMode::Kprobe)
            .unwrap_err()
            .to_string()
            .contains("dentry"));
        let k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE.func, no_btf()),
                (COPY_UP_FILE.func, f(&["a", "b", "c", "d", "len"])),
            ],
        );
        assert!(decide(&k, ProbeMode::Kprobe).is_err());
    }

    #[test]
    fn operations_and_xattr_variants() {
        let mut k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE.func, no_btf()),
                (COPY_UP_FILE.func, no_btf()),
                ("ovl_open", no_btf()),
                ("ovl_rename", no_btf()),
                (
                    OTHER_XATTR_SET.func,
                    f(&[
                        "handler", "idmap", "dentry", "inode", "name", "value", "size", "flags",
                    ]),
                ),
            ],
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        let funcs: Vec<&str> = p.ops.iter().map(|h| h.func).collect();
        assert_eq!(funcs, ["ovl_open", "ovl_rename", OTHER_XATTR_SET.func]);
        assert_eq!(p.args.xattr_value, 5);
        k.funcs.insert(
            XATTR_SET.func.into(),
            f(&["dentry", "inode", "name", "value", "size", "flags"]),
        );
        let p = decide(&k, ProbeMode::Kprobe).unwrap();
        assert_eq!(p.ops.last(), Some(&&XATTR_SET));
        assert_eq!(p.args.xattr_value, 3);
    }

    fn with_btf(mut f: FuncFacts, id: u32, module: Option<&str>) -> FuncFacts {
        f.btf = Some(BtfFunc {
            id,
            module: module.map(String::from),
        });
        f
    }

    /// Debian 6.12 with overlay module BTF: every function takes fentry/fexit.
    fn fentry_6_12() -> KernelFacts {
        facts(
            "6.12.117+deb12-amd64",
            &[
                (
                    COPY_UP_ONE.func,
                    with_btf(f(&["parent", "dentry", "flags"]), 70001, Some("overlay")),
                ),
                (
                    COPY_UP_FILE.func,
                    with_btf(
                        f(&["ofs", "dentry", "new_file", "len", "datasync"]),
                        70002,
                        Some("overlay"),
                    ),
                ),
                (
                    SETATTR.func,
                    with_btf(f(&["idmap", "dentry", "attr"]), 70003, Some("overlay")),
                ),
                (
                    FCHOWNAT.func,
                    with_btf(f(&["dfd", "filename", "user", "group", "flag"]), 1234, None),
                ),
            ],
        )
    }

    #[test]
    fn fentry_wherever_btf_describes_the_function() {
        let p = decide(&fentry_6_12(), ProbeMode::Auto).unwrap();
        assert_eq!(p.mechanisms.len(), p.hooks().count());
        for (func, m) in &p.mechanisms {
            assert_eq!(m.name(), "fentry", "{func}");
        }
        assert_eq!(
            p.mechanism(&COPY_UP_ONE),
            &Mechanism::Fentry(BtfFunc {
                id: 70001,
                module: Some("overlay".into())
            })
        );
        assert_eq!(
            p.mechanism(&FCHOWNAT),
            &Mechanism::Fentry(BtfFunc {
                id: 1234,
                module: None
            })
        );
        let p = decide(&fentry_6_12(), ProbeMode::Fentry).unwrap();
        assert!(p.mechanisms.values().all(|m| m.kind() == Attach::Fentry));
        let p = decide(&fentry_6_12(), ProbeMode::Kprobe).unwrap();
        assert!(p.mechanisms.values().all(|m| m.kind() == Attach::Kprobe));
    }

    /// A function that cannot take fentry gets a kprobe, with the reason; the others
    /// keep fentry. `--probes fentry` refuses, naming the function.
    #[test]
    fn kprobe_fallback_per_function() {
        let mut k = fentry_6_12();
        k.funcs.get_mut(SETATTR.func).unwrap().btf = None;
        let p = decide(&k, ProbeMode::Auto).unwrap();
        assert_eq!(p.mechanism(&COPY_UP_ONE).name(), "fentry");
        match p.mechanism(&SETATTR) {
            Mechanism::Kprobe { why_not_fentry } => {
                assert!(why_not_fentry.contains("BTF"), "{why_not_fentry}")
            }
            m => panic!("{m:?}"),
        }
        let err = decide(&k, ProbeMode::Fentry).unwrap_err().to_string();
        assert!(err.contains("ovl_setattr cannot take fentry"), "{err}");
        k.overlay_btf = false;
        let err = decide(&k, ProbeMode::Fentry).unwrap_err().to_string();
        assert!(err.contains("/sys/kernel/btf/overlay"), "{err}");
    }

    /// fentry programs read fixed argument indexes: elsewhere, a kprobe.
    #[test]
    fn fentry_only_where_its_argument_is() {
        let mut k = fentry_6_12();
        k.funcs.insert(
            SETATTR.func.into(),
            with_btf(f(&["dentry", "attr"]), 70003, Some("overlay")),
        );
        let p = decide(&k, ProbeMode::Auto).unwrap();
        assert_eq!(p.args.setattr_attr, 1);
        match p.mechanism(&SETATTR) {
            Mechanism::Kprobe { why_not_fentry } => {
                assert!(why_not_fentry.contains("`attr`"), "{why_not_fentry}")
            }
            m => panic!("{m:?}"),
        }
        assert_eq!(p.mechanism(&COPY_UP_FILE).name(), "fentry");
    }

    /// Kprobe support is needed only where a function gets a kprobe.
    #[test]
    fn kprobes_needed_only_for_kprobes() {
        let p = decide(&fentry_6_12(), ProbeMode::Auto).unwrap();
        assert_eq!(p.kprobes_needed(), None);
        let p = decide(&fentry_6_12(), ProbeMode::Kprobe).unwrap();
        assert_eq!(p.kprobes_needed().as_deref(), Some("--probes kprobe"));
        let mut k = fentry_6_12();
        k.funcs.get_mut(SETATTR.func).unwrap().btf = None;
        let need = decide(&k, ProbeMode::Auto)
            .unwrap()
            .kprobes_needed()
            .unwrap();
        assert!(
            need.starts_with("ovl_setattr cannot take fentry: "),
            "{need}"
        );
        k.release = "5.10.0-32-amd64".into();
        let need = decide(&k, ProbeMode::Auto)
            .unwrap()
            .kprobes_needed()
            .unwrap();
        assert!(need.contains("older than 5.17"), "{need}");
    }

    /// Before 5.17 fexit cannot read return values: kprobes everywhere.
    #[test]
    fn no_fentry_before_5_17() {
        let mut k = fentry_6_12();
        k.release = "5.15.0-91-generic".into();
        let p = decide(&k, ProbeMode::Auto).unwrap();
        assert!(p.mechanisms.values().all(|m| m.kind() == Attach::Kprobe));
        let err = decide(&k, ProbeMode::Fentry).unwrap_err().to_string();
        assert!(err.contains("5.17"), "{err}");
    }

    /// arm64 attaches trampolines to kernel functions from 6.4 only; x86 wherever fexit
    /// reads return values.
    #[test]
    fn arm64_trampolines_from_6_4() {
        let why = no_trampolines("6.1.0-41-arm64", arch::Arch::Aarch64).unwrap();
        assert!(
            why.contains("older than 6.4") && why.contains("aarch64"),
            "{why}"
        );
        assert_eq!(
            no_trampolines("6.12.57+deb13-arm64", arch::Arch::Aarch64),
            None
        );
        assert_eq!(no_trampolines("6.1.0-41-amd64", arch::Arch::X86_64), None);
    }

    /// Stored state is checked against the syscall in progress from 5.15, where BTF
    /// gives the registers' offsets; before, and without them, it is taken as stored.
    #[test]
    fn calls_are_checked_from_5_15() {
        let mut k = fentry_6_12();
        let p = decide(&k, ProbeMode::Auto).unwrap();
        assert_eq!(
            p.regs,
            Regs {
                enabled: 1,
                nr: 120,
                ip: 128,
                sp: 152
            }
        );
        k.release = "5.10.0-32-amd64".into();
        assert_eq!(decide(&k, ProbeMode::Auto).unwrap().regs.enabled, 0);
        k.release = "5.15.0-91-generic".into();
        assert_eq!(decide(&k, ProbeMode::Auto).unwrap().regs.enabled, 1);
        k.regs = None;
        assert_eq!(decide(&k, ProbeMode::Auto).unwrap().regs, Regs::default());
    }

    #[test]
    fn stacks_stop_at_trampolines_before_5_15() {
        assert!(stack_limit("5.10.0-32-amd64").is_some_and(|m| m.contains("5.10.0-32")));
        assert_eq!(stack_limit("5.15.0"), None);
        assert_eq!(stack_limit("6.12.117+deb12-amd64"), None);
    }
}
