//! Process-tree scoping for `-- COMMAND`: a traced process's children join `TRACKED`.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use aya_log_ebpf::warn;

use crate::{
    config::conf,
    maps::{tgid_of, TRACKED},
};

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let tgid = tgid_of(bpf_get_current_pid_tgid());
    // SAFETY: lookup only.
    if unsafe { TRACKED.get(&tgid) }.is_none() {
        return 0;
    }
    // SAFETY: reading a field of the tracepoint record at an offset from its format file.
    let Ok(child) = (unsafe { ctx.read_at::<u32>(conf!(fork_child_pid_off) as usize) }) else {
        return 0;
    };
    if TRACKED.insert(&child, &1, 0).is_err() {
        warn!(
            &ctx,
            "process-tree map full: child {} of {} not tracked", child, tgid
        );
    }
    0
}
