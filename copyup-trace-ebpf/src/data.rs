//! The data copy nested in a copy-up (`ovl_copy_up_file`, or `ovl_copy_up_data` where
//! that is the data path): adds its bytes and time to the thread's `InFlight` record.
//! Where the length is found is decided by user space (`Config::args`).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use copyup_trace_common::{hooks::fentry_arg, kabi};

use crate::{
    config::{arg, conf},
    maps::{innermost, now, tid_of, Btf, Kmem, Probe},
};

/// Bytes this data copy will copy: the `len` argument, or for `ovl_copy_up_data(c,
/// temp)` (6.1+) `c->stat.size`, which it copies only for a non-empty regular file.
#[inline(always)]
fn data_len(ctx: &ProbeContext) -> u64 {
    let arg = arg(ctx, conf!(args.data_len)).unwrap_or(0);
    if conf!(args.data_len_from_ctx) != 0 {
        len_from_ctx::<Probe>(arg)
    } else {
        (arg as i64).max(0) as u64
    }
}

/// `c->stat.size` of a `struct ovl_copy_up_ctx *c`, for a regular file; else 0. `c` is
/// read as `K`.
#[inline(always)]
fn len_from_ctx<K: Kmem>(c: u64) -> u64 {
    let c = c as *const u8;
    // SAFETY: bounded kernel reads of two scalars.
    let mode: u16 = unsafe { K::get(c, conf!(args.ctx_stat_mode)) };
    if !kabi::is_reg(mode as u32) {
        return 0;
    }
    // SAFETY: as above.
    let len: i64 = unsafe { K::get(c, conf!(args.ctx_stat_size)) };
    len.max(0) as u64
}

#[kprobe]
pub fn copy_data(ctx: ProbeContext) -> u32 {
    data_enter(data_len(&ctx))
}

/// `ovl_copy_up_file(ofs, dentry, new_file, len[, datasync])`.
#[fentry(function = "ovl_copy_up_file")]
pub fn fe_copy_up_file(ctx: FEntryContext) -> u32 {
    data_enter(ctx.arg::<i64>(fentry_arg::COPY_UP_FILE_LEN as usize).max(0) as u64)
}

/// `ovl_copy_up_data(c, temp)` (6.1+).
#[fentry(function = "ovl_copy_up_data")]
pub fn fe_copy_up_data(ctx: FEntryContext) -> u32 {
    data_enter(len_from_ctx::<Btf>(
        ctx.arg::<u64>(fentry_arg::COPY_UP_DATA_CTX as usize),
    ))
}

#[inline(always)]
fn data_enter(len: u64) -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    let Some(st) = innermost(tid) else {
        return 0;
    };
    // SAFETY: map value owned by this thread's key.
    unsafe {
        (*st).bytes += len;
        (*st).data_start_ns = now();
    }
    0
}

#[kretprobe]
pub fn copy_data_ret(_ctx: RetProbeContext) -> u32 {
    data_exit()
}

#[fexit(function = "ovl_copy_up_file")]
pub fn fx_copy_up_file(_ctx: FExitContext) -> u32 {
    data_exit()
}

#[fexit(function = "ovl_copy_up_data")]
pub fn fx_copy_up_data(_ctx: FExitContext) -> u32 {
    data_exit()
}

#[inline(always)]
fn data_exit() -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    let Some(st) = innermost(tid) else {
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
