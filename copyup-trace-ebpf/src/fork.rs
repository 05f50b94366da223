//! Process-tree scoping for `-- COMMAND`: a traced process's children join `TRACKED`.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};
use aya_log_ebpf::warn;

use crate::{
    config::conf,
    maps::{read_or_zero, tgid_of, TRACKED},
};

/// `sched_process_fork(parent, child)`, run in the parent.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> u32 {
    let tgid = tgid_of(bpf_get_current_pid_tgid());
    // SAFETY: lookup only.
    if unsafe { TRACKED.get(&tgid) }.is_none() {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    // SAFETY: a bounded kernel read of the child task's tgid. A new thread has its
    // parent's, already tracked; a new process its own.
    let child_tgid: u32 = unsafe { read_or_zero(child, conf!(off.task_tgid)) };
    if child_tgid == 0 || child_tgid == tgid {
        return 0;
    }
    if TRACKED.insert(&child_tgid, &1, 0).is_err() {
        warn!(
            &ctx,
            "process-tree map full: child {} of {} not tracked", child_tgid, tgid
        );
    }
    0
}
