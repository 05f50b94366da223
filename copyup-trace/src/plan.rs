//! Decides, from facts about the running kernel, which functions to probe and where
//! their interesting arguments and struct fields are. Pure logic: the facts are
//! gathered by `kernel.rs`, the result is applied by `probes.rs`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// What is known about one kernel function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuncFacts {
    /// In `/proc/kallsyms` under exactly this name, so a kprobe can attach to it.
    pub attachable: bool,
    /// Parameter names from BTF, in order; `None` when BTF has no prototype for it.
    pub params: Option<Vec<String>>,
}

/// Byte offsets of the struct fields the eBPF side reads, from BTF.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    pub dentry_parent: u32,
    /// `d_name` + `qstr.name`.
    pub dentry_name: u32,
    pub dentry_inode: u32,
    pub inode_mode: u32,
    pub inode_size: u32,
    pub dentry_sb: u32,
    pub sb_dev: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub iattr_valid: u32,
    /// `ovl_copy_up_ctx.stat` + `kstat.size` / `kstat.mode`, when overlay BTF has them.
    pub ctx_stat_size: Option<u32>,
    pub ctx_stat_mode: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// Functions we may probe, by name.
    pub funcs: BTreeMap<String, FuncFacts>,
    pub offsets: Offsets,
    /// Offset of `ret` in the `syscalls:sys_exit_{chown,lchown,fchownat}` records, when
    /// all three tracepoints exist (and agree).
    pub chown_exit_ret_offset: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChownExit {
    Tracepoints { ret_offset: u32 },
    Kretprobe,
}

/// The chown-family syscalls whose exit tracepoints end a `do_fchownat` call.
pub const CHOWN_EXIT_TRACEPOINTS: [&str; 3] =
    ["sys_exit_chown", "sys_exit_lchown", "sys_exit_fchownat"];

/// Where the data-copy probe reads the number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenSource {
    /// A plain argument, by index.
    Arg(u32),
    /// `ovl_copy_up_data(c, ...)`: `c->stat.size`, counted only for regular files.
    CtxStat {
        ctx_arg: u32,
        size_off: u32,
        mode_off: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataProbe {
    pub func: &'static str,
    pub len: LenSource,
}

/// Everything `probes.rs` needs to configure and attach the eBPF programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    pub copy_up_dentry_arg: u32,
    /// `do_fchownat` can be probed; otherwise chown copy-ups are named by their
    /// setattr mask only.
    pub fchownat: bool,
    /// Where the chown syscalls' returns are seen: the syscall-exit tracepoints when the
    /// kernel has them (no limit on threads in flight, unlike a kretprobe, whose few
    /// instances a burst of threads can exhaust), else a kretprobe on `do_fchownat`.
    pub chown_exit: ChownExit,
    /// Index of `attr` in `ovl_setattr`, if it can be probed.
    pub setattr_attr_arg: Option<u32>,
    /// `ovl_copy_up_end` can be probed: a copy-up that returns 0 without reaching it
    /// waited for another thread's copy-up.
    pub copy_up_end: bool,
    pub data: DataProbe,
    /// Overlayfs operations to attach to: (kernel function, eBPF program).
    pub ops: Vec<(&'static str, &'static str)>,
    pub offsets: Offsets,
}

impl ProbePlan {
    /// The eBPF program for `ovl_setattr` entry, by where `attr` is.
    pub fn setattr_program(&self) -> Option<&'static str> {
        self.setattr_attr_arg.map(|i| {
            if i == 1 {
                "ovl_setattr_a1"
            } else {
                "ovl_setattr_a2"
            }
        })
    }

    /// The eBPF program for the data-copy entry, by where the length is.
    pub fn data_program(&self) -> &'static str {
        match self.data.len {
            LenSource::Arg(2) => "copy_data_a2",
            LenSource::Arg(_) => "copy_data_a3",
            LenSource::CtxStat { .. } => "copy_data_ctx",
        }
    }
}

pub const COPY_UP_ONE: &str = "ovl_copy_up_one";
pub const COPY_UP_FILE: &str = "ovl_copy_up_file";
pub const COPY_UP_DATA: &str = "ovl_copy_up_data";
pub const COPY_UP_END: &str = "ovl_copy_up_end";
pub const SETATTR: &str = "ovl_setattr";
pub const FCHOWNAT: &str = "do_fchownat";

pub const XATTR_SET: &str = "ovl_xattr_set";
pub const OTHER_XATTR_SET: &str = "ovl_other_xattr_set";

/// Overlayfs entry points that copy up, with the eBPF program that names them. Their
/// addresses are taken by inode/file operation tables, so they are never inlined away.
pub const OP_FUNCTIONS: &[(&str, &str)] = &[
    ("ovl_open", "op_open"),
    ("ovl_create", "op_create"),
    ("ovl_atomic_open", "op_create"),
    ("ovl_mkdir", "op_mkdir"),
    ("ovl_mknod", "op_mknod"),
    ("ovl_symlink", "op_symlink"),
    ("ovl_link", "op_link"),
    ("ovl_unlink", "op_unlink"),
    ("ovl_rmdir", "op_rmdir"),
    ("ovl_rename", "op_rename"),
    ("ovl_tmpfile", "op_tmpfile"),
];

/// Every function the plan may look at; `kernel.rs` gathers facts for these.
pub const FUNCTIONS: &[&str] = &[
    COPY_UP_ONE,
    COPY_UP_FILE,
    COPY_UP_DATA,
    COPY_UP_END,
    SETATTR,
    FCHOWNAT,
    XATTR_SET,
    OTHER_XATTR_SET,
    "ovl_open",
    "ovl_create",
    "ovl_atomic_open",
    "ovl_mkdir",
    "ovl_mknod",
    "ovl_symlink",
    "ovl_link",
    "ovl_unlink",
    "ovl_rmdir",
    "ovl_rename",
    "ovl_tmpfile",
];

/// `(major, minor)` from a release string such as `6.12.57+deb12-amd64`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

impl KernelFacts {
    fn func(&self, name: &str) -> Option<&FuncFacts> {
        self.funcs.get(name).filter(|f| f.attachable)
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
        fallback(parse_release(&self.release)?)
    }
}

/// Decides the probe plan, or says precisely why this kernel cannot be traced.
pub fn decide(facts: &KernelFacts) -> Result<ProbePlan> {
    let Some(one) = facts.func(COPY_UP_ONE) else {
        bail!(
            "overlayfs function {COPY_UP_ONE} is not in /proc/kallsyms: is the overlay module loaded, \
             and is this kernel's overlayfs one copyup-trace knows (4.x to 6.x)?"
        );
    };
    // (parent, dentry, flags) on every kernel that has the function.
    let Some(copy_up_dentry_arg) = facts.arg_index(one, "dentry", |_| Some(1)) else {
        bail!("{COPY_UP_ONE} in this kernel's BTF has no `dentry` parameter");
    };

    let setattr_attr_arg = match facts.func(SETATTR) {
        // (dentry, attr) before 5.12; (user_ns|idmap, dentry, attr) since.
        Some(f) => Some(
            facts
                .arg_index(f, "attr", |v| Some(if v < (5, 12) { 1 } else { 2 }))
                .ok_or_else(|| {
                    anyhow::anyhow!("{SETATTR} in this kernel's BTF has no `attr` parameter")
                })?,
        ),
        None => None,
    };

    if copy_up_dentry_arg != 1 {
        bail!("{COPY_UP_ONE} takes `dentry` as argument {copy_up_dentry_arg}; copyup-trace knows only (parent, dentry, flags)");
    }
    if let Some(i) = setattr_attr_arg {
        if !(1..=2).contains(&i) {
            bail!(
                "{SETATTR} takes `attr` as argument {i}; copyup-trace knows only positions 1 and 2"
            );
        }
    }
    let data = decide_data_probe(facts)?;
    match data.len {
        LenSource::Arg(2 | 3) => {}
        LenSource::CtxStat { ctx_arg: 0, .. } => {}
        other => bail!(
            "{} has its length where copyup-trace cannot read it ({other:?})",
            data.func
        ),
    }

    let mut ops: Vec<(&'static str, &'static str)> = OP_FUNCTIONS
        .iter()
        .copied()
        .filter(|(func, _)| facts.func(func).is_some())
        .collect();
    if let Some(x) = decide_xattr(facts) {
        ops.push(x);
    }

    Ok(ProbePlan {
        ops,
        copy_up_dentry_arg,
        fchownat: facts.func(FCHOWNAT).is_some(),
        chown_exit: match facts.chown_exit_ret_offset {
            Some(ret_offset) => ChownExit::Tracepoints { ret_offset },
            None => ChownExit::Kretprobe,
        },
        setattr_attr_arg,
        copy_up_end: facts.func(COPY_UP_END).is_some(),
        data,
        offsets: facts.offsets,
    })
}

/// Where setting or removing an xattr can be seen, by the position of `value`:
/// `ovl_xattr_set(dentry, inode, name, value, ...)`, or the handler
/// `ovl_other_xattr_set(handler, ns|idmap, dentry, inode, name, value, ...)` where the
/// former was inlined.
fn decide_xattr(facts: &KernelFacts) -> Option<(&'static str, &'static str)> {
    for (func, fallback) in [(XATTR_SET, 3), (OTHER_XATTR_SET, 5)] {
        let Some(f) = facts.func(func) else { continue };
        match facts.arg_index(f, "value", |_| Some(fallback)) {
            Some(3) => return Some((func, "op_xattr_v3")),
            Some(5) => return Some((func, "op_xattr_v5")),
            _ => continue,
        }
    }
    None
}

fn decide_data_probe(facts: &KernelFacts) -> Result<DataProbe> {
    // ovl_copy_up_file(ofs, dentry, new_file, len[, datasync]) since 5.10; before that
    // (old, new, len). It is the one function every data copy goes through, on both
    // the O_TMPFILE and the workdir path.
    if let Some(f) = facts.func(COPY_UP_FILE) {
        let idx = facts
            .arg_index(f, "len", |v| Some(if v < (5, 10) { 2 } else { 3 }))
            .ok_or_else(|| anyhow::anyhow!("{COPY_UP_FILE} in BTF has no `len` parameter"))?;
        return Ok(DataProbe {
            func: COPY_UP_FILE,
            len: LenSource::Arg(idx),
        });
    }
    // Where ovl_copy_up_file was inlined, ovl_copy_up_data is the data path:
    // (old, new, len) before 5.10, (ofs, old, new, len) in 5.10..6.0, (c, temp) since 6.1.
    if let Some(f) = facts.func(COPY_UP_DATA) {
        let by_arg = |idx| DataProbe {
            func: COPY_UP_DATA,
            len: LenSource::Arg(idx),
        };
        let by_ctx = |ctx_arg| -> Result<DataProbe> {
            match (facts.offsets.ctx_stat_size, facts.offsets.ctx_stat_mode) {
                (Some(size_off), Some(mode_off)) => Ok(DataProbe {
                    func: COPY_UP_DATA,
                    len: LenSource::CtxStat {
                        ctx_arg,
                        size_off,
                        mode_off,
                    },
                }),
                _ => bail!(
                    "{COPY_UP_DATA} takes a copy-up context, but BTF does not describe \
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
            bail!("{COPY_UP_DATA} in BTF has neither a `len` nor a `c` parameter");
        }
        return match parse_release(&facts.release) {
            Some(v) if v < (5, 10) => Ok(by_arg(2)),
            Some(v) if v < (6, 1) => Ok(by_arg(3)),
            Some(_) => by_ctx(0),
            None => bail!("cannot parse kernel release {:?}", facts.release),
        };
    }
    bail!(
        "neither {COPY_UP_FILE} nor {COPY_UP_DATA} can be probed on this kernel: \
         the bytes copied cannot be measured"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(params: &[&str]) -> FuncFacts {
        FuncFacts {
            attachable: true,
            params: Some(params.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn no_btf() -> FuncFacts {
        FuncFacts {
            attachable: true,
            params: None,
        }
    }

    fn facts(release: &str, funcs: &[(&str, FuncFacts)]) -> KernelFacts {
        KernelFacts {
            release: release.into(),
            funcs: funcs
                .iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect(),
            offsets: Offsets {
                ctx_stat_size: Some(136),
                ctx_stat_mode: Some(108),
                ..Default::default()
            },
            chown_exit_ret_offset: Some(16),
        }
    }

    #[test]
    fn chown_exit_prefers_tracepoints() {
        let mut k = facts(
            "6.12.117+deb12-amd64",
            &[
                (COPY_UP_ONE, f(&["parent", "dentry", "flags"])),
                (
                    COPY_UP_FILE,
                    f(&["ofs", "dentry", "new_file", "len", "datasync"]),
                ),
            ],
        );
        assert_eq!(
            decide(&k).unwrap().chown_exit,
            ChownExit::Tracepoints { ret_offset: 16 }
        );
        k.chown_exit_ret_offset = None;
        assert_eq!(decide(&k).unwrap().chown_exit, ChownExit::Kretprobe);
    }

    /// Debian 6.1: overlay is a module with split BTF; ovl_copy_up_file has 4 args.
    #[test]
    fn debian_6_1() {
        let k = facts(
            "6.1.0-41-amd64",
            &[
                (COPY_UP_ONE, f(&["parent", "dentry", "flags"])),
                (COPY_UP_FILE, f(&["ofs", "dentry", "new_file", "len"])),
                (COPY_UP_DATA, f(&["c", "temp"])),
                (COPY_UP_END, f(&["dentry"])),
                (SETATTR, f(&["mnt_userns", "dentry", "attr"])),
                (FCHOWNAT, f(&["dfd", "filename", "user", "group", "flag"])),
            ],
        );
        let p = decide(&k).unwrap();
        assert_eq!(p.copy_up_dentry_arg, 1);
        assert_eq!(p.setattr_attr_arg, Some(2));
        assert!(p.fchownat && p.copy_up_end);
        assert_eq!(
            p.data,
            DataProbe {
                func: COPY_UP_FILE,
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
                (COPY_UP_ONE, f(&["parent", "dentry", "flags"])),
                (
                    COPY_UP_FILE,
                    f(&["ofs", "dentry", "new_file", "len", "datasync"]),
                ),
                (SETATTR, f(&["idmap", "dentry", "attr"])),
                (FCHOWNAT, f(&["dfd", "filename", "user", "group", "flag"])),
            ],
        );
        let p = decide(&k).unwrap();
        assert_eq!(p.data.len, LenSource::Arg(3));
        assert_eq!(p.setattr_attr_arg, Some(2));
        assert!(!p.copy_up_end);
    }

    /// 6.18 (the build host's BTF): same shapes as 6.12.
    #[test]
    fn host_6_18() {
        let k = facts(
            "6.18.44",
            &[
                (COPY_UP_ONE, f(&["parent", "dentry", "flags"])),
                (
                    COPY_UP_FILE,
                    f(&["ofs", "dentry", "new_file", "len", "datasync"]),
                ),
                (COPY_UP_DATA, f(&["c", "temp"])),
                (SETATTR, f(&["idmap", "dentry", "attr"])),
            ],
        );
        let p = decide(&k).unwrap();
        assert_eq!(p.copy_up_dentry_arg, 1);
        assert_eq!(p.data.func, COPY_UP_FILE);
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
                    size_off: 136,
                    mode_off: 108,
                },
            ),
        ] {
            let k = facts(
                release,
                &[
                    (COPY_UP_ONE, no_btf()),
                    (COPY_UP_DATA, no_btf()),
                    (SETATTR, no_btf()),
                ],
            );
            let p = decide(&k).unwrap();
            assert_eq!(p.data.func, COPY_UP_DATA, "{release}");
            assert_eq!(p.data.len, want, "{release}");
        }
    }

    #[test]
    fn setattr_arity_by_version_without_btf() {
        for (release, want) in [("5.4.0", 1), ("5.12.0", 2), ("6.1.0-41-amd64", 2)] {
            let k = facts(
                release,
                &[
                    (COPY_UP_ONE, no_btf()),
                    (COPY_UP_FILE, no_btf()),
                    (SETATTR, no_btf()),
                ],
            );
            assert_eq!(
                decide(&k).unwrap().setattr_attr_arg,
                Some(want),
                "{release}"
            );
        }
    }

    #[test]
    fn ctx_form_needs_struct_offsets() {
        let mut k = facts(
            "6.1.0",
            &[(COPY_UP_ONE, no_btf()), (COPY_UP_DATA, f(&["c", "temp"]))],
        );
        k.offsets.ctx_stat_size = None;
        let err = decide(&k).unwrap_err().to_string();
        assert!(err.contains("ovl_copy_up_ctx"), "{err}");
    }

    #[test]
    fn missing_copy_up_one_is_explained() {
        let k = facts("6.1.0", &[(COPY_UP_FILE, no_btf())]);
        let err = decide(&k).unwrap_err().to_string();
        assert!(err.contains("ovl_copy_up_one"), "{err}");
        assert!(err.contains("overlay module"), "{err}");
    }

    #[test]
    fn unattachable_functions_are_ignored() {
        let mut k = facts(
            "6.12.0",
            &[(COPY_UP_ONE, no_btf()), (COPY_UP_DATA, no_btf())],
        );
        k.funcs.insert(
            COPY_UP_FILE.into(),
            FuncFacts {
                attachable: false,
                params: Some(vec![
                    "ofs".into(),
                    "dentry".into(),
                    "new_file".into(),
                    "len".into(),
                ]),
            },
        );
        assert_eq!(decide(&k).unwrap().data.func, COPY_UP_DATA);
    }

    #[test]
    fn program_variants_follow_the_plan() {
        let k = facts(
            "5.4.0",
            &[
                (COPY_UP_ONE, no_btf()),
                (COPY_UP_DATA, no_btf()),
                (SETATTR, no_btf()),
            ],
        );
        let p = decide(&k).unwrap();
        assert_eq!(p.setattr_program(), Some("ovl_setattr_a1"));
        assert_eq!(p.data_program(), "copy_data_a2");
        let k = facts(
            "6.1.0",
            &[(COPY_UP_ONE, no_btf()), (COPY_UP_DATA, no_btf())],
        );
        let p = decide(&k).unwrap();
        assert_eq!(p.setattr_program(), None);
        assert_eq!(p.data_program(), "copy_data_ctx");
        let k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE, no_btf()),
                (COPY_UP_FILE, no_btf()),
                (SETATTR, no_btf()),
            ],
        );
        let p = decide(&k).unwrap();
        assert_eq!(p.setattr_program(), Some("ovl_setattr_a2"));
        assert_eq!(p.data_program(), "copy_data_a3");
    }

    #[test]
    fn unknown_argument_positions_are_refused() {
        let k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE, f(&["dentry", "flags"])),
                (COPY_UP_FILE, no_btf()),
            ],
        );
        assert!(decide(&k).unwrap_err().to_string().contains("dentry"));
        let k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE, no_btf()),
                (COPY_UP_FILE, f(&["a", "b", "c", "d", "len"])),
            ],
        );
        assert!(decide(&k).is_err());
    }

    #[test]
    fn operations_and_xattr_variants() {
        let mut k = facts(
            "6.12.0",
            &[
                (COPY_UP_ONE, no_btf()),
                (COPY_UP_FILE, no_btf()),
                ("ovl_open", no_btf()),
                ("ovl_rename", no_btf()),
                (
                    OTHER_XATTR_SET,
                    f(&[
                        "handler", "idmap", "dentry", "inode", "name", "value", "size", "flags",
                    ]),
                ),
            ],
        );
        let p = decide(&k).unwrap();
        assert_eq!(
            p.ops,
            vec![
                ("ovl_open", "op_open"),
                ("ovl_rename", "op_rename"),
                (OTHER_XATTR_SET, "op_xattr_v5")
            ]
        );
        k.funcs.insert(
            XATTR_SET.into(),
            f(&["dentry", "inode", "name", "value", "size", "flags"]),
        );
        assert_eq!(
            decide(&k).unwrap().ops.last(),
            Some(&(XATTR_SET, "op_xattr_v3"))
        );
    }

    #[test]
    fn release_parsing() {
        assert_eq!(parse_release("6.12.57+deb12-amd64"), Some((6, 12)));
        assert_eq!(parse_release("6.1.0-41-amd64"), Some((6, 1)));
        assert_eq!(parse_release("5.4"), Some((5, 4)));
        assert_eq!(parse_release("garbage"), None);
    }
}
