//! The data copy nested in a copy-up (`ovl_copy_up_file`, or `ovl_copy_up_data` where
//! that is the data path): adds its bytes and time to the thread's `InFlight` record.
//! Where the length is found is decided by user space (`Config::args`).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use copyup_trace_common::kabi;

use crate::{
    config::{arg, conf},
    maps::{now, read_or_zero, tid_of, INFLIGHT},
};

/// Bytes this data copy will copy: the `len` argument, or for `ovl_copy_up_data(c,
/// temp)` (6.1+) `c->stat.size`, which it copies only for a non-empty regular file.
#[inline(always)]
fn data_len(ctx: &ProbeContext) -> u64 {
    let len: i64 = if conf!(args.data_len_from_ctx) != 0 {
        let c = arg(ctx, conf!(args.data_len)).unwrap_or(0) as *const u8;
        // SAFETY: bounded kernel reads of two scalars.
        let mode: u16 = unsafe { read_or_zero(c, conf!(args.ctx_stat_mode)) };
        if !kabi::is_reg(mode as u32) {
            return 0;
        }
        // SAFETY: as above.
        unsafe { read_or_zero(c, conf!(args.ctx_stat_size)) }
    } else {
        arg(ctx, conf!(args.data_len)).unwrap_or(0) as i64
    };
    len.max(0) as u64
}

#[kprobe]
pub fn copy_data(ctx: ProbeContext) -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    let Some(st) = INFLIGHT.get_ptr_mut(&tid) else {
        return 0;
    };
    let len = data_len(&ctx);
    // SAFETY: map value owned by this thread's key.
    unsafe {
        (*st).bytes += len;
        (*st).data_start_ns = now();
    }
    0
}

#[kretprobe]
pub fn copy_data_ret(_ctx: RetProbeContext) -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    let Some(st) = INFLIGHT.get_ptr_mut(&tid) else {
        return 0;
    };
    // SAFETY: map value owned by this thread's key.
    unsafe {
        if (*st).data_start_ns != 0 {
            (*st).data_ns += now() - (*st).data_start_ns;
            (*st).data_start_ns = 0;
        }
    }
    0
}
