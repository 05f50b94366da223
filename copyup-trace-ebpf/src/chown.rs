//! The chown-family syscalls (`do_fchownat`): their entry, their return through the
//! syscall-exit tracepoints (or a kretprobe or fexit where those are missing), and the
//! latency record of a call that copied up. The copy-up records themselves are
//! `copy_up`'s. The kprobe and fentry/fexit programs only extract the arguments.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, fexit, kprobe, kretprobe, tracepoint},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use copyup_trace_common::{op, SyscallState};

use crate::{
    config::conf,
    copy_up::flush_missed,
    maps::{current_call, now, return_skipped, syscall_state, tid_of, traced, SYSCALLS},
    ops::{op_done, Done},
};

// do_fchownat(dfd, filename, user, group, flag) on every kernel that has it.
#[kprobe]
pub fn do_fchownat(ctx: ProbeContext) -> u32 {
    fchownat_enter(ctx.arg(4).unwrap_or(0), ctx.arg(1).unwrap_or(0)).unwrap_or(0)
}

#[fentry(function = "do_fchownat")]
pub fn fe_do_fchownat(ctx: FEntryContext) -> u32 {
    fchownat_enter(ctx.arg::<u64>(4) as u32, ctx.arg::<u64>(1)).unwrap_or(0)
}

#[inline(always)]
fn fchownat_enter(flag: u32, filename: u64) -> Option<u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !traced(pid_tgid) {
        return None;
    }
    let st = SyscallState {
        call: current_call(),
        start_ns: now(),
        copy_ups: 0,
        flag,
        filename,
        noop: 0,
        _pad: 0,
    };
    let _ = SYSCALLS.insert(&tid_of(pid_tgid), &st, 0);
    Some(0)
}

/// A chown-family syscall returned: report its latency if it copied up, and drop its
/// state.
#[inline(always)]
fn fchownat_done(ret: i32) -> Option<u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if return_skipped(pid_tgid) {
        return None;
    }
    let tid = tid_of(pid_tgid);
    // Only the state of this syscall: one left by an earlier call whose return was
    // skipped goes without a report.
    let p = syscall_state(tid, &current_call())?;
    // SAFETY: map value owned by this thread's key. It is copied out only after the
    // flush, which counts the copy-up it sends in it: a call whose only copy-up missed
    // its return still reports its latency.
    let st = unsafe {
        flush_missed((*p).start_ns, ret);
        *p
    };
    if st.copy_ups > 0 {
        op_done(
            pid_tgid,
            Done {
                op: op::FCHOWNAT,
                start_ns: st.start_ns,
                copy_ups: st.copy_ups,
                ret,
                ia_valid: 0,
                flags: st.flag,
            },
        );
    }
    let _ = SYSCALLS.remove(&tid);
    Some(0)
}

/// Where the kernel has no syscall-exit tracepoints.
#[kretprobe]
pub fn do_fchownat_ret(ctx: RetProbeContext) -> u32 {
    fchownat_done(ctx.ret::<i64>() as i32).unwrap_or(0)
}

/// Where the kernel has no syscall-exit tracepoints and the function takes fexit.
#[fexit(function = "do_fchownat")]
pub fn fx_do_fchownat(ctx: FExitContext) -> u32 {
    fchownat_done(ctx.ret::<i64>().unwrap_or(0) as i32).unwrap_or(0)
}

/// `syscalls:sys_exit_{chown,lchown,fchownat}`: unlike a kretprobe, a tracepoint has no
/// limit on how many threads can be inside the syscall.
#[tracepoint]
pub fn chown_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: reading the `long ret` field at the offset from its format file.
    let ret = unsafe { ctx.read_at::<i64>(conf!(sys_exit_ret_off) as usize) }.unwrap_or(0);
    fchownat_done(ret as i32).unwrap_or(0)
}
