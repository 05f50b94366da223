//! The one `CONFIG` global that user space fills before loading (see
//! `copyup_trace_common::config`), and how programs read it. Nothing else is configured.

use core::ptr::read_volatile;

use aya_ebpf::{helpers::generated::bpf_get_func_arg, programs::ProbeContext, EbpfContext};
use copyup_trace_common::Config;

/// Written by user space into `.rodata` before the object is loaded. The map is frozen,
/// so the verifier knows every field as a constant and prunes branches on it.
#[no_mangle]
pub static CONFIG: Config = Config {
    filter_tgid: 0,
    filter_tracked: 0,
    filter_cgroup: 0,
    filter_comm_set: 0,
    filter_comm: [0; 16],
    capture_stacks: 0,
    sees_waits: 0,
    wakeup_bytes: 0,
    sys_exit_ret_off: 0,
    args: copyup_trace_common::config::Args {
        copy_up_dentry: 0,
        setattr_attr: 0,
        xattr_value: 0,
        data_len: 0,
        data_len_from_ctx: 0,
        ctx_stat_size: 0,
        ctx_stat_mode: 0,
    },
    off: copyup_trace_common::config::Offsets {
        dentry_parent: 0,
        dentry_name: 0,
        dentry_inode: 0,
        inode_mode: 0,
        inode_size: 0,
        dentry_sb: 0,
        sb_dev: 0,
        task_real_parent: 0,
        task_tgid: 0,
        iattr_valid: 0,
        iattr_uid: 0,
        iattr_gid: 0,
        iattr_mode: 0,
        inode_uid: 0,
        inode_gid: 0,
        cgroup_kn: 0,
        kernfs_id: 0,
        cgroup_root: 0,
        root_hierarchy_id: 0,
    },
    lower: copyup_trace_common::config::LowerStack {
        entry_at: 0,
        entry_off: 0,
        numlower: 0,
        lowerstack: 0,
        path_size: 0,
        path_layer: 0,
        layer_idx: 0,
    },
    regs: copyup_trace_common::config::Regs {
        enabled: 0,
        nr: 0,
        ip: 0,
        sp: 0,
    },
    skip_returns_of: 0,
};

/// One field of `CONFIG`, e.g. `conf!(off.dentry_parent)`. A volatile read keeps the
/// compiler from folding the all-zero placeholder before user space has written it.
macro_rules! conf {
    ($($field:tt)+) => {
        $crate::config::read(&$crate::config::CONFIG.$($field)+)
    };
}
pub(crate) use conf;

#[inline(always)]
pub fn read<T: Copy>(field: &'static T) -> T {
    // SAFETY: a field of a `.rodata` global: valid, aligned, never written by us.
    unsafe { read_volatile(field) }
}

/// Argument `n` of a kprobe, where `n` comes from `CONFIG`: the first six argument
/// registers of the architecture the object is built for (`bpf_target_arch`, which
/// aya-build sets from the user-space target): x86-64's rdi, rsi, rdx, rcx, r8, r9;
/// arm64's x0-x5. The verifier refuses a load through a context pointer moved by a
/// register, which is what a `match` on `n` compiles to. So all six are loaded at their
/// constant offsets (volatile: none is merged away) and `n`, a constant to the
/// verifier, picks one.
#[inline(always)]
pub fn arg(ctx: &ProbeContext, n: u32) -> Option<u64> {
    let regs = ctx.regs;
    // SAFETY: `regs` is the kprobe's register context, valid for the program's run.
    #[cfg(bpf_target_arch = "x86_64")]
    let args = unsafe {
        [
            read_volatile(&raw const (*regs).rdi),
            read_volatile(&raw const (*regs).rsi),
            read_volatile(&raw const (*regs).rdx),
            read_volatile(&raw const (*regs).rcx),
            read_volatile(&raw const (*regs).r8),
            read_volatile(&raw const (*regs).r9),
        ]
    };
    // SAFETY: as above.
    #[cfg(bpf_target_arch = "aarch64")]
    let args = unsafe {
        [
            read_volatile(&raw const (*regs).regs[0]),
            read_volatile(&raw const (*regs).regs[1]),
            read_volatile(&raw const (*regs).regs[2]),
            read_volatile(&raw const (*regs).regs[3]),
            read_volatile(&raw const (*regs).regs[4]),
            read_volatile(&raw const (*regs).regs[5]),
        ]
    };
    args.get(n as usize).copied()
}

#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
compile_error!("copyup-trace's kernel side is built for x86_64 and aarch64 only (bpf_target_arch)");

/// Argument `n` of an fentry/fexit program through `bpf_get_func_arg` (5.17+, as is
/// fexit's `bpf_get_func_ret`). A typed context read is refused for some argument
/// types (`const void *`: "type UNKNOWN is not a struct"); the helper reads any.
#[inline(always)]
pub fn func_arg<C: EbpfContext>(ctx: &C, n: u32) -> u64 {
    let mut value = 0u64;
    // SAFETY: the helper checks `n` against the function's argument count and writes
    // one u64 to a local.
    unsafe { bpf_get_func_arg(ctx.as_ptr(), n, &mut value) };
    value
}
