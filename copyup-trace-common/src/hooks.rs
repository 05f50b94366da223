//! The probe table: every kernel function and tracepoint the tool attaches to, with the
//! names of the eBPF programs that serve them. The eBPF crate defines programs under
//! these names (a test checks the built object against this table); `plan` picks rows,
//! `probes` attaches them, the benchmark and the tests find our programs by them. Which
//! rows a kernel gets is decided elsewhere (`plan`).

/// A kernel function and the programs that see its entry and its return, as kprobes
/// and as fentry/fexit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncHook {
    pub func: &'static str,
    /// Program run at entry (kprobe).
    pub entry: &'static str,
    /// Program run at return (kretprobe), where the return matters.
    pub ret: Option<&'static str>,
    /// fentry program: one per function, since a tracing program is loaded for one
    /// target.
    pub fentry: &'static str,
    /// fexit program, where the return matters.
    pub fexit: Option<&'static str>,
    /// The argument whose position differs between kernels, and the index the fentry
    /// program reads it at. The verifier refuses an fentry program that reads an
    /// argument index the function does not have, so fentry programs read constant
    /// indexes only; where the kernel has the argument elsewhere, the function gets a
    /// kprobe (`plan`).
    pub fentry_arg: Option<(&'static str, u32)>,
}

/// Tracepoints served by one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracepointHook {
    pub program: &'static str,
    pub category: &'static str,
    pub events: &'static [&'static str],
}

/// The argument positions fentry programs read (`FuncHook::fentry_arg`): the kernel side
/// reads these constants, the plan checks the kernel's BTF against them.
pub mod fentry_arg {
    /// `ovl_setattr(idmap, dentry, attr)`.
    pub const SETATTR_ATTR: u32 = 2;
    /// `ovl_copy_up_file(ofs, dentry, new_file, len[, datasync])`.
    pub const COPY_UP_FILE_LEN: u32 = 3;
    /// `ovl_copy_up_data(c, temp)`.
    pub const COPY_UP_DATA_CTX: u32 = 0;
    /// `ovl_xattr_set(dentry, inode, name, value, size, flags)`.
    pub const XATTR_SET_VALUE: u32 = 3;
    /// `ovl_other_xattr_set(handler, idmap, dentry, inode, name, value, ...)`.
    pub const OTHER_XATTR_SET_VALUE: u32 = 5;
}

/// Whether kernel function `func` lives in the overlay module (its BTF is the module's,
/// and it goes when the module goes): overlayfs names every function `ovl_*`.
pub fn in_overlay_module(func: &str) -> bool {
    func.starts_with("ovl_")
}

/// Return kprobe shared by every overlayfs operation (setattr, xattr, open, ...).
pub const OP_RET: &str = "op_ret";

const fn hook(
    func: &'static str,
    entry: &'static str,
    ret: &'static str,
    fentry: &'static str,
    fexit: &'static str,
) -> FuncHook {
    FuncHook {
        func,
        entry,
        ret: Some(ret),
        fentry,
        fexit: Some(fexit),
        fentry_arg: None,
    }
}

const fn with_arg(h: FuncHook, param: &'static str, index: u32) -> FuncHook {
    FuncHook {
        fentry_arg: Some((param, index)),
        ..h
    }
}

/// An overlayfs operation: its own entry programs, the shared return kprobe, its own
/// fexit.
const fn op(
    func: &'static str,
    entry: &'static str,
    fentry: &'static str,
    fexit: &'static str,
) -> FuncHook {
    hook(func, entry, OP_RET, fentry, fexit)
}

/// chown(2), lchown(2), fchownat(2). Its return is seen through `CHOWN_EXIT` where the
/// kernel has those tracepoints (no limit on threads in flight, unlike a kretprobe).
pub const FCHOWNAT: FuncHook = hook(
    "do_fchownat",
    "do_fchownat",
    "do_fchownat_ret",
    "fe_do_fchownat",
    "fx_do_fchownat",
);
/// `ovl_setattr`: chmod, truncate, utimes, fchown; `attr`'s position moved in 5.12.
pub const SETATTR: FuncHook = with_arg(
    op("ovl_setattr", "ovl_setattr", "fe_setattr", "fx_setattr"),
    "attr",
    fentry_arg::SETATTR_ATTR,
);
/// One overlay object copied up; the unit of every record.
pub const COPY_UP_ONE: FuncHook = hook(
    "ovl_copy_up_one",
    "ovl_copy_up_one",
    "copy_up_one_ret",
    "fe_copy_up_one",
    "fx_copy_up_one",
);
/// Reached only by the thread that does the copy-up, not by one that waits for it.
pub const COPY_UP_END: FuncHook = FuncHook {
    func: "ovl_copy_up_end",
    entry: "ovl_copy_up_end",
    ret: None,
    fentry: "fe_copy_up_end",
    fexit: None,
    fentry_arg: None,
};
/// The data copy, where it is a function of its own: `len` 4th since 5.10.
pub const COPY_UP_FILE: FuncHook = with_arg(
    hook(
        "ovl_copy_up_file",
        "copy_data",
        "copy_data_ret",
        "fe_copy_up_file",
        "fx_copy_up_file",
    ),
    "len",
    fentry_arg::COPY_UP_FILE_LEN,
);
/// The data copy where `ovl_copy_up_file` was inlined into it; its fentry program
/// knows only the `(c, temp)` form of 6.1+.
pub const COPY_UP_DATA: FuncHook = with_arg(
    hook(
        "ovl_copy_up_data",
        "copy_data",
        "copy_data_ret",
        "fe_copy_up_data",
        "fx_copy_up_data",
    ),
    "c",
    fentry_arg::COPY_UP_DATA_CTX,
);
/// Setting or removing an xattr: `ovl_xattr_set`, or its caller where it was inlined.
pub const XATTR_SET: FuncHook = with_arg(
    op("ovl_xattr_set", "op_xattr", "fe_xattr_set", "fx_xattr_set"),
    "value",
    fentry_arg::XATTR_SET_VALUE,
);
pub const OTHER_XATTR_SET: FuncHook = with_arg(
    op(
        "ovl_other_xattr_set",
        "op_xattr",
        "fe_other_xattr_set",
        "fx_other_xattr_set",
    ),
    "value",
    fentry_arg::OTHER_XATTR_SET_VALUE,
);

/// The overlayfs operations that copy up (open and the directory operations), each
/// attached wherever the kernel has it. Their addresses are taken by inode/file
/// operation tables, so they are never inlined away.
pub const OPS: &[FuncHook] = &[
    op("ovl_open", "op_open", "fe_open", "fx_open"),
    op("ovl_create", "op_create", "fe_create", "fx_create"),
    op(
        "ovl_atomic_open",
        "op_create",
        "fe_atomic_open",
        "fx_atomic_open",
    ),
    op("ovl_mkdir", "op_mkdir", "fe_mkdir", "fx_mkdir"),
    op("ovl_mknod", "op_mknod", "fe_mknod", "fx_mknod"),
    op("ovl_symlink", "op_symlink", "fe_symlink", "fx_symlink"),
    op("ovl_link", "op_link", "fe_link", "fx_link"),
    op("ovl_unlink", "op_unlink", "fe_unlink", "fx_unlink"),
    op("ovl_rmdir", "op_rmdir", "fe_rmdir", "fx_rmdir"),
    op("ovl_rename", "op_rename", "fe_rename", "fx_rename"),
    op("ovl_tmpfile", "op_tmpfile", "fe_tmpfile", "fx_tmpfile"),
];

/// The functions every plan decides on one by one: the syscall, the attribute and xattr
/// operations, the copy-up and its data copy.
const CORE: &[FuncHook] = &[
    FCHOWNAT,
    SETATTR,
    COPY_UP_ONE,
    COPY_UP_END,
    COPY_UP_FILE,
    COPY_UP_DATA,
    XATTR_SET,
    OTHER_XATTR_SET,
];

const fn concat<const N: usize>(a: &[FuncHook], b: &[FuncHook]) -> [FuncHook; N] {
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}

const ALL: [FuncHook; CORE.len() + OPS.len()] = concat(CORE, OPS);

/// Every kernel function the tool may probe: `CORE`, then `OPS`.
pub const FUNCS: &[FuncHook] = &ALL;

/// The chown-family syscalls' exits: end of a `do_fchownat` call. Which of them an
/// architecture has is `Arch::chown_exits`; fchownat, which every one has, is last.
pub const CHOWN_EXIT: TracepointHook = TracepointHook {
    program: "chown_exit",
    category: "syscalls",
    events: &["sys_exit_chown", "sys_exit_lchown", "sys_exit_fchownat"],
};
pub const TRACEPOINTS: &[TracepointHook] = &[CHOWN_EXIT];

/// A raw tracepoint served by one program: attached by name, with no tracefs, and its
/// arguments the tracepoint's own (`TP_PROTO`), not a formatted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTracepointHook {
    pub program: &'static str,
    pub event: &'static str,
}

/// Follows `-- COMMAND`'s process tree: `(parent, child)` tasks.
pub const FORK: RawTracepointHook = RawTracepointHook {
    program: "sched_process_fork",
    event: "sched_process_fork",
};
/// A thread's end: its per-thread state goes. It runs in the ending task.
pub const THREAD_EXIT: RawTracepointHook = RawTracepointHook {
    program: "sched_process_exit",
    event: "sched_process_exit",
};
/// A cgroup made: its id and path go to user space (`CgroupEvent`).
pub const CGROUP_MKDIR: RawTracepointHook = RawTracepointHook {
    program: "cgroup_mkdir",
    event: "cgroup_mkdir",
};
pub const RAW_TRACEPOINTS: &[RawTracepointHook] = &[FORK, THREAD_EXIT, CGROUP_MKDIR];

fn all_names() -> impl Iterator<Item = &'static str> + Clone {
    FUNCS
        .iter()
        .flat_map(|h| {
            core::iter::once(h.entry)
                .chain(h.ret)
                .chain(core::iter::once(h.fentry))
                .chain(h.fexit)
        })
        .chain(TRACEPOINTS.iter().map(|t| t.program))
        .chain(RAW_TRACEPOINTS.iter().map(|t| t.program))
}

/// Every eBPF program of the tool, each once.
pub fn programs() -> impl Iterator<Item = &'static str> {
    all_names()
        .enumerate()
        .filter(|&(i, name)| !all_names().take(i).any(|n| n == name))
        .map(|(_, name)| name)
}

/// The hook of kernel function `func`.
pub fn func(func: &str) -> Option<&'static FuncHook> {
    FUNCS.iter().find(|h| h.func == func)
}
