//! The probe table: every kernel function and tracepoint the tool attaches to, with the
//! names of the eBPF programs that serve them. The eBPF crate defines programs under
//! these names (a test checks the built object against this table); `plan` picks rows,
//! `probes` attaches them, the benchmark and the tests find our programs by them. Which
//! rows a kernel gets is decided elsewhere (`plan`).

/// A kernel function and the programs that see its entry and its return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncHook {
    pub func: &'static str,
    /// Program run at entry (kprobe).
    pub entry: &'static str,
    /// Program run at return (kretprobe), where the return matters.
    pub ret: Option<&'static str>,
}

/// Tracepoints served by one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracepointHook {
    pub program: &'static str,
    pub category: &'static str,
    pub events: &'static [&'static str],
}

/// Return program shared by every overlayfs operation (setattr, xattr, open, ...).
pub const OP_RET: &str = "op_ret";

const fn hook(func: &'static str, entry: &'static str, ret: &'static str) -> FuncHook {
    FuncHook {
        func,
        entry,
        ret: Some(ret),
    }
}

/// chown(2), lchown(2), fchownat(2). Its return is seen through `CHOWN_EXIT` where the
/// kernel has those tracepoints (no limit on threads in flight, unlike a kretprobe).
pub const FCHOWNAT: FuncHook = hook("do_fchownat", "do_fchownat", "do_fchownat_ret");
/// `ovl_setattr`: chmod, truncate, utimes, fchown; `attr`'s position moved in 5.12.
pub const SETATTR: FuncHook = hook("ovl_setattr", "ovl_setattr", OP_RET);
/// One overlay object copied up; the unit of every record.
pub const COPY_UP_ONE: FuncHook = hook("ovl_copy_up_one", "ovl_copy_up_one", "copy_up_one_ret");
/// Reached only by the thread that does the copy-up, not by one that waits for it.
pub const COPY_UP_END: FuncHook = FuncHook {
    func: "ovl_copy_up_end",
    entry: "ovl_copy_up_end",
    ret: None,
};
/// The data copy, where it is a function of its own.
pub const COPY_UP_FILE: FuncHook = hook("ovl_copy_up_file", "copy_data", "copy_data_ret");
/// The data copy where `ovl_copy_up_file` was inlined into it.
pub const COPY_UP_DATA: FuncHook = hook("ovl_copy_up_data", "copy_data", "copy_data_ret");
/// Setting or removing an xattr: `ovl_xattr_set`, or its caller where it was inlined.
pub const XATTR_SET: FuncHook = hook("ovl_xattr_set", "op_xattr", OP_RET);
pub const OTHER_XATTR_SET: FuncHook = hook("ovl_other_xattr_set", "op_xattr", OP_RET);

/// Every kernel function the tool may probe; `OPS` is its tail.
pub const FUNCS: &[FuncHook] = &[
    FCHOWNAT,
    SETATTR,
    COPY_UP_ONE,
    COPY_UP_END,
    COPY_UP_FILE,
    COPY_UP_DATA,
    XATTR_SET,
    OTHER_XATTR_SET,
    // Overlayfs entry points that copy up. Their addresses are taken by inode/file
    // operation tables, so they are never inlined away.
    hook("ovl_open", "op_open", OP_RET),
    hook("ovl_create", "op_create", OP_RET),
    hook("ovl_atomic_open", "op_create", OP_RET),
    hook("ovl_mkdir", "op_mkdir", OP_RET),
    hook("ovl_mknod", "op_mknod", OP_RET),
    hook("ovl_symlink", "op_symlink", OP_RET),
    hook("ovl_link", "op_link", OP_RET),
    hook("ovl_unlink", "op_unlink", OP_RET),
    hook("ovl_rmdir", "op_rmdir", OP_RET),
    hook("ovl_rename", "op_rename", OP_RET),
    hook("ovl_tmpfile", "op_tmpfile", OP_RET),
];

/// The overlayfs operations that copy up (open and the directory operations), each
/// attached wherever the kernel has it.
pub const OPS: &[FuncHook] = FUNCS.split_at(8).1;

/// The chown-family syscalls' exits: end of a `do_fchownat` call.
pub const CHOWN_EXIT: TracepointHook = TracepointHook {
    program: "chown_exit",
    category: "syscalls",
    events: &["sys_exit_chown", "sys_exit_lchown", "sys_exit_fchownat"],
};
/// Follows `-- COMMAND`'s process tree.
pub const FORK: TracepointHook = TracepointHook {
    program: "sched_process_fork",
    category: "sched",
    events: &["sched_process_fork"],
};
pub const TRACEPOINTS: &[TracepointHook] = &[CHOWN_EXIT, FORK];

fn all_names() -> impl Iterator<Item = &'static str> + Clone {
    FUNCS
        .iter()
        .flat_map(|h| core::iter::once(h.entry).chain(h.ret))
        .chain(TRACEPOINTS.iter().map(|t| t.program))
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
