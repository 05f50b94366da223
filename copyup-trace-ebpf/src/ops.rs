//! Overlayfs operations that copy up (setattr, open, xattr, directory operations): their
//! entry, which names the trigger of copy-ups inside them, and their return, which
//! reports the operation's own latency. Chown syscalls are `chown`'s. The kprobe and
//! fentry/fexit programs only extract the arguments and the return value.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use copyup_trace_common::{
    counter, hooks::fentry_arg, inflight_key, kabi, op, record, OpDoneEvent, OpState,
};

use crate::{
    config::{arg, conf, func_arg},
    copy_up::flush_missed,
    maps::{
        bump, current_call, notify_flags, now, op_state, return_skipped, syscall_state, tgid_of,
        tid_of, traced, Btf, Kmem, Probe, EVENTS, INFLIGHT, OPS,
    },
};

/// A syscall or operation that caused copy-ups, as it returns.
pub struct Done {
    pub op: u32,
    pub start_ns: u64,
    pub copy_ups: u32,
    pub ret: i32,
    pub ia_valid: u32,
    /// `OpState::copy_flags`, or do_fchownat's `flag` for `op::FCHOWNAT`.
    pub flags: u32,
}

/// Reports the latency of a syscall or operation that caused copy-ups.
#[inline(always)]
pub fn op_done(pid_tgid: u64, d: Done) {
    let ev = OpDoneEvent {
        record: record::OP_DONE,
        op: d.op,
        start_ns: d.start_ns,
        duration_ns: now() - d.start_ns,
        pid: tgid_of(pid_tgid),
        tid: tid_of(pid_tgid),
        copy_ups: d.copy_ups,
        ret: d.ret,
        ia_valid: d.ia_valid,
        flags: d.flags,
    };
    if EVENTS.output::<OpDoneEvent>(&ev, notify_flags()).is_err() {
        bump(counter::LOST_EVENTS);
    }
}

/// `setattr`, a SETATTR's dentry and `iattr`, to ask whether it asks for what the file
/// already has, read as `K`; it is asked only for a traced task. (Plain values, not a
/// closure: LLVM leaves a closure this size out of line, a BPF subprogram, which
/// verifiers before 6.4 check at far greater cost.)
#[inline(always)]
fn op_enter<K: Kmem>(op: u32, ia_valid: u32, setattr: Option<(u64, *const u8)>) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !traced(pid_tgid) {
        return 0;
    }
    let tid = tid_of(pid_tgid);
    let call = current_call();
    let noop = setattr.is_some_and(|(dentry, attr)| setattr_is_noop::<K>(dentry, attr, ia_valid));
    // Inside chown the syscall's own state names the trigger and carries the latency,
    // and the answer to `noop`.
    if let Some(s) = syscall_state(tid, &call) {
        if op == op::SETATTR {
            // SAFETY: this thread's own state, updated in place.
            unsafe { (*s).noop = noop as u32 };
        }
        return 0;
    }
    // An operation of another overlay inside a copy-up under an operation (opening the
    // lower file, which is on an overlay, to copy it): what it copies up is the outer
    // operation's doing, and the outer operation's state stays.
    if let Some(outer) = op_state(tid, &call) {
        // SAFETY: lookup of a value owned by this thread's key; the other is this
        // thread's own state, updated in place.
        unsafe {
            if INFLIGHT
                .get(&inflight_key(tid, 0))
                .is_some_and(|f| f.start_ns >= (*outer).start_ns)
            {
                (*outer).nested += 1;
                return 0;
            }
        }
    }
    let st = OpState {
        call,
        start_ns: now(),
        op,
        ia_valid,
        copy_ups: 0,
        copy_flags: 0,
        nested: 0,
        noop: noop as u32,
    };
    let _ = OPS.insert(&tid, &st, 0);
    0
}

/// Return probe shared by every operation entry point.
#[kretprobe]
pub fn op_ret(ctx: RetProbeContext) -> u32 {
    op_exit(ctx.ret::<i64>() as i32, true).unwrap_or(0)
}

/// `flush`: look for copy-ups whose return probe was missed (see `flush_missed`); fexit
/// programs leave that out, since a copy-up on fexit never misses its return.
#[inline(always)]
fn op_exit(ret: i32, flush: bool) -> Option<u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if return_skipped(pid_tgid) {
        return None;
    }
    let tid = tid_of(pid_tgid);
    let o = op_state(tid, &current_call())?;
    // SAFETY: map value owned by this thread's key, updated in place or copied out
    // after the flush (which counts the copy-up it sends in it).
    let st = unsafe {
        if (*o).nested > 0 {
            // A nested operation's return (see `op_enter`).
            (*o).nested -= 1;
            return Some(0);
        }
        if flush {
            flush_missed((*o).start_ns, ret);
        }
        *o
    };
    if st.copy_ups > 0 {
        op_done(
            pid_tgid,
            Done {
                op: st.op,
                start_ns: st.start_ns,
                copy_ups: st.copy_ups,
                ret,
                ia_valid: st.ia_valid,
                flags: st.copy_flags,
            },
        );
    }
    let _ = OPS.remove(&tid);
    Some(0)
}

/// The fexit program of operation `$func` (one per function: a tracing program is
/// loaded for one target).
macro_rules! op_fexit {
    ($name:ident, $func:literal) => {
        #[fexit(function = $func)]
        pub fn $name(ctx: FExitContext) -> u32 {
            op_exit(ctx.ret::<i64>().unwrap_or(0) as i32, false).unwrap_or(0)
        }
    };
}

/// An entry kprobe per operation (a kprobe cannot tell which function it is on), and
/// the fentry/fexit programs of each function it serves.
macro_rules! op_probe {
    ($(#[$doc:meta])* $name:ident => $op:expr; $($func:literal: $fentry:ident, $fexit:ident);+) => {
        $(#[$doc])*
        #[kprobe]
        pub fn $name(_ctx: ProbeContext) -> u32 {
            op_enter::<Probe>($op, 0, None)
        }
        $(
            #[fentry(function = $func)]
            pub fn $fentry(_ctx: FEntryContext) -> u32 {
                op_enter::<Probe>($op, 0, None)
            }
            op_fexit!($fexit, $func);
        )+
    };
}

op_probe!(
    /// `ovl_open`: open for write or with O_TRUNC copies the file up.
    op_open => op::OPEN; "ovl_open": fe_open, fx_open);
op_probe!(
    /// Directory operations copy up the parent directory (and, for link and rename,
    /// the source).
    op_create => op::CREATE;
    "ovl_create": fe_create, fx_create;
    "ovl_atomic_open": fe_atomic_open, fx_atomic_open);
op_probe!(op_mkdir => op::MKDIR; "ovl_mkdir": fe_mkdir, fx_mkdir);
op_probe!(op_mknod => op::MKNOD; "ovl_mknod": fe_mknod, fx_mknod);
op_probe!(op_symlink => op::SYMLINK; "ovl_symlink": fe_symlink, fx_symlink);
op_probe!(op_link => op::LINK; "ovl_link": fe_link, fx_link);
op_probe!(op_unlink => op::UNLINK; "ovl_unlink": fe_unlink, fx_unlink);
op_probe!(op_rmdir => op::RMDIR; "ovl_rmdir": fe_rmdir, fx_rmdir);
op_probe!(op_rename => op::RENAME; "ovl_rename": fe_rename, fx_rename);
op_probe!(op_tmpfile => op::TMPFILE; "ovl_tmpfile": fe_tmpfile, fx_tmpfile);

/// Setting an xattr (`value` at `Args::xattr_value`); a NULL value removes it.
#[kprobe]
pub fn op_xattr(ctx: ProbeContext) -> u32 {
    xattr_enter(arg(&ctx, conf!(args.xattr_value)).unwrap_or(0))
}

/// `ovl_xattr_set(dentry, inode, name, value, ...)`; `value` is a `const void *`,
/// which only `bpf_get_func_arg` reads.
#[fentry(function = "ovl_xattr_set")]
pub fn fe_xattr_set(ctx: FEntryContext) -> u32 {
    xattr_enter(func_arg(&ctx, fentry_arg::XATTR_SET_VALUE))
}
op_fexit!(fx_xattr_set, "ovl_xattr_set");

/// `ovl_other_xattr_set(handler, idmap, dentry, inode, name, value, ...)`.
#[fentry(function = "ovl_other_xattr_set")]
pub fn fe_other_xattr_set(ctx: FEntryContext) -> u32 {
    xattr_enter(func_arg(&ctx, fentry_arg::OTHER_XATTR_SET_VALUE))
}
op_fexit!(fx_other_xattr_set, "ovl_other_xattr_set");

#[inline(always)]
fn xattr_enter(value: u64) -> u32 {
    op_enter::<Probe>(
        if value == 0 {
            op::REMOVEXATTR
        } else {
            op::SETXATTR
        },
        0,
        None,
    )
}

/// `ovl_setattr`, with `attr` at `Args::setattr_attr`: `(dentry, attr)` before 5.12,
/// `(user_ns | idmap, dentry, attr)` since.
#[kprobe]
pub fn ovl_setattr(ctx: ProbeContext) -> u32 {
    let at = conf!(args.setattr_attr);
    let dentry = arg(&ctx, at.wrapping_sub(1)).unwrap_or(0);
    setattr_enter::<Probe>(dentry, arg(&ctx, at).unwrap_or(0))
}

/// `ovl_setattr(idmap, dentry, attr)` (5.12+).
#[fentry(function = "ovl_setattr")]
pub fn fe_setattr(ctx: FEntryContext) -> u32 {
    let at = fentry_arg::SETATTR_ATTR as usize;
    setattr_enter::<Btf>(ctx.arg::<u64>(at - 1), ctx.arg::<u64>(at))
}
op_fexit!(fx_setattr, "ovl_setattr");

/// `dentry` is the argument before `attr` in every form of `ovl_setattr`; both are read
/// as `K`.
#[inline(always)]
fn setattr_enter<K: Kmem>(dentry: u64, attr: u64) -> u32 {
    let attr = attr as *const u8;
    // SAFETY: bounded kernel read of an int.
    let valid: u32 = unsafe { K::get(attr, conf!(off.iattr_valid)) };
    op_enter::<K>(op::SETATTR, valid, Some((dentry, attr)))
}

/// Whether the setattr at `attr` asks for what the inode of `dentry` already has.
#[inline(always)]
fn setattr_is_noop<K: Kmem>(dentry: u64, attr: *const u8, valid: u32) -> bool {
    // SAFETY: bounded kernel reads of ints.
    unsafe {
        let inode = K::get::<u64>(dentry as *const u8, conf!(off.dentry_inode)) as *const u8;
        !inode.is_null()
            && kabi::setattr_is_noop(
                valid,
                K::get(attr, conf!(off.iattr_uid)),
                K::get(attr, conf!(off.iattr_gid)),
                K::get::<u16>(attr, conf!(off.iattr_mode)) as u32,
                K::get(inode, conf!(off.inode_uid)),
                K::get(inode, conf!(off.inode_gid)),
                K::get::<u16>(inode, conf!(off.inode_mode)) as u32,
            )
    }
}
