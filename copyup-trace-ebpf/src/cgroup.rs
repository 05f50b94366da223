//! Cgroups as they are made: their id and path go to user space (`CgroupEvent`), which
//! names copy-ups' cgroups from them; it ends at sending them.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use copyup_trace_common::{counter, record, CgroupEvent};

use crate::{
    config::conf,
    maps::{bump, notify_flags, read_or_zero, read_ptr, EVENTS},
};

/// `cgroup_mkdir(cgrp, path)`: `path` is the one the kernel formatted for the
/// tracepoint, from the hierarchy's root.
#[raw_tracepoint(tracepoint = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: RawTracePointContext) -> u32 {
    // The tracepoint's two arguments; kernel memory is read only through probe-read
    // helpers.
    let (cgrp, path): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(1));
    let Some(root) = (unsafe { read_ptr(cgrp, conf!(off.cgroup_root)) }) else {
        return 0;
    };
    // Only the unified hierarchy's ids are those of `bpf_get_current_cgroup_id`.
    let hierarchy: i32 = unsafe { read_or_zero(root, conf!(off.root_hierarchy_id)) };
    if root.is_null() || hierarchy != 0 {
        return 0;
    }
    let id: u64 = match unsafe { read_ptr(cgrp, conf!(off.cgroup_kn)) } {
        Some(kn) if !kn.is_null() => unsafe { read_or_zero(kn, conf!(off.kernfs_id)) },
        _ => return 0,
    };
    let Some(mut entry) = EVENTS.reserve::<CgroupEvent>(0) else {
        bump(counter::LOST_EVENTS);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record is ours until submitted; every field is written.
    unsafe {
        (*ev).record = record::CGROUP;
        (*ev).id = id;
        let len = bpf_probe_read_kernel_str_bytes(path, &mut (*ev).path)
            .map(|s| s.len())
            .unwrap_or(0);
        (*ev).path_len = len as u32;
    }
    entry.submit(notify_flags());
    0
}
