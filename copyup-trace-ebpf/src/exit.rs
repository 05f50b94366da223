//! A thread's end (`sched_process_exit`, which fires for every exiting task): whatever
//! this tool keeps for the thread goes with it, so that state a skipped run left behind
//! is never taken for the state of a later thread that reuses its tid.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};
use copyup_trace_common::{counter, inflight_key, MAX_NEST};

use crate::maps::{bump, scratch_gone, tid_of, INFLIGHT, OPS, SYSCALLS};

/// `sched_process_exit(task)`, run in the ending task.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    let _ = SYSCALLS.remove(&tid);
    let _ = OPS.remove(&tid);
    scratch_gone(tid);
    // A copy-up still in flight when its thread ends lost its return probe and was
    // never flushed by a later return: counted as a missed return, as user space counts
    // the entries of threads gone before it looked (`Probes::reap_exited`).
    let mut level = 0;
    while level < MAX_NEST {
        if INFLIGHT.remove(&inflight_key(tid, level)).is_ok() {
            bump(counter::MISSED_RETURNS);
        }
        level += 1;
    }
    0
}
