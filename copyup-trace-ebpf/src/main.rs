//! Kernel side of copyup-trace.
//!
//! Per thread (keyed by tid) it remembers which syscall / setattr is in progress and a
//! small `InFlight` record per `ovl_copy_up_one` call, adds the bytes and time of the data
//! copy nested inside it, and when the copy-up returns builds one `CopyUpEvent` in a
//! per-CPU scratch and sends its header and the names it used through the ring buffer.
//!
//! Struct offsets and argument positions differ between kernels; user space reads them
//! from BTF at start-up and patches them into the globals below before loading.
#![no_std]
#![no_main]
// Map values are passed by reference, as the map API takes them.
#![allow(clippy::needless_borrows_for_generic_args)]

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated,
    },
    macros::{kprobe, kretprobe, map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{tracing::StackIdContext, ProbeContext, RetProbeContext, TracePointContext},
};
use aya_log_ebpf::warn;
use copyup_trace_common::{
    counter, flags, inflight, op, record, CopyUpEvent, InFlight, OpDoneEvent, OpState,
    SyscallState, COPY_UP_HEADER_LEN, FILENAME_LEN, MAX_PATH_DEPTH, NAME_READ_LEN,
    PATH_COMPONENTS_LEN,
};
use core::ptr::read_volatile;

// ---- configuration patched in by user space (see copyup-trace/src/probes.rs) ----

/// Only this process (tgid), when non-zero.
#[no_mangle]
static FILTER_TGID: u32 = 0;
/// When non-zero, only processes whose tgid is in `TRACKED`.
#[no_mangle]
static FILTER_TRACKED: u32 = 0;
/// When `FILTER_COMM_SET` is non-zero, only tasks whose comm equals this.
#[no_mangle]
static FILTER_COMM: [u8; 16] = [0; 16];
#[no_mangle]
static FILTER_COMM_SET: u32 = 0;
/// When non-zero, record kernel and user stacks of each copy-up in `STACKS`.
#[no_mangle]
static CAPTURE_STACKS: u32 = 0;
/// When non-zero, only tasks whose cgroup id is in `CGROUPS`.
#[no_mangle]
static FILTER_CGROUP: u32 = 0;
/// Wake user space only once this many bytes wait in the ring (set to an eighth of it):
/// a wake-up per event (an irq_work self-IPI and a scheduler wake-up) costs more than
/// building the event. User space also drains on a short timer.
#[no_mangle]
static WAKEUP_BYTES: u32 = 0;
/// Non-zero when `ovl_copy_up_end` is probed: a copy-up that returns 0 without reaching
/// it waited for another thread's copy-up.
#[no_mangle]
static SEES_WAITS: u32 = 0;

#[no_mangle]
static OFF_DENTRY_PARENT: u32 = 0;
/// Offset of `d_name.name` inside `struct dentry`.
#[no_mangle]
static OFF_DENTRY_NAME: u32 = 0;
#[no_mangle]
static OFF_DENTRY_INODE: u32 = 0;
#[no_mangle]
static OFF_INODE_MODE: u32 = 0;
#[no_mangle]
static OFF_INODE_SIZE: u32 = 0;
#[no_mangle]
static OFF_DENTRY_SB: u32 = 0;
#[no_mangle]
static OFF_SB_DEV: u32 = 0;
#[no_mangle]
static OFF_TASK_REAL_PARENT: u32 = 0;
#[no_mangle]
static OFF_TASK_TGID: u32 = 0;
/// Offset of `ia_valid` in `struct iattr`.
#[no_mangle]
static OFF_IATTR_VALID: u32 = 0;

/// `c->stat.size` / `c->stat.mode` offsets for the `ovl_copy_up_data(c, ...)` form.
#[no_mangle]
static CTX_SIZE_OFF: u32 = 0;
#[no_mangle]
static CTX_MODE_OFF: u32 = 0;
/// Offset of `ret` in the `syscalls:sys_exit_*` tracepoint records.
#[no_mangle]
static SYS_EXIT_RET_OFF: u32 = 16;
/// Offset of `child_pid` in the `sched_process_fork` tracepoint record.
#[no_mangle]
static FORK_CHILD_PID_OFF: u32 = 44;

#[inline(always)]
fn cfg(v: &'static u32) -> u32 {
    // SAFETY: globals live in .rodata; volatile keeps the compiler from folding the
    // placeholder value before user space patches it.
    unsafe { read_volatile(v) }
}

// ---- maps ----

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Copy-ups in flight, by tid. LRU so that a missed return probe cannot leak entries.
#[map]
static INFLIGHT: LruHashMap<u32, InFlight> = LruHashMap::with_max_entries(1024, 0);

/// `do_fchownat` calls in flight, by tid.
#[map]
static SYSCALLS: LruHashMap<u32, SyscallState> = LruHashMap::with_max_entries(4096, 0);

/// Overlayfs operations in flight (setattr, open, xattr, directory ops), by tid.
#[map]
static OPS: LruHashMap<u32, OpState> = LruHashMap::with_max_entries(4096, 0);

/// Kernel and user stacks of copy-ups (`--stacks`), by id.
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

/// `--cgroup`: the cgroup ids (the given cgroup and its descendants) to trace.
#[map]
static CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(4096, BPF_F_NO_PREALLOC);

/// Process tree of `-- COMMAND`: tgids whose copy-ups are traced.
#[map]
static TRACKED: HashMap<u32, u8> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Where a copy-up record is built before its used part is copied into the ring.
#[map]
static EVENT_SCRATCH: PerCpuArray<CopyUpEvent> = PerCpuArray::with_max_entries(1, 0);

// ---- helpers ----

#[inline(always)]
fn bump(idx: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// Flags for submitting a record: see `WAKEUP_BYTES`.
#[inline(always)]
fn notify_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= cfg(&WAKEUP_BYTES) as u64 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn tid_of(pid_tgid: u64) -> u32 {
    pid_tgid as u32
}

#[inline(always)]
fn traced(pid_tgid: u64) -> bool {
    let tgid = (pid_tgid >> 32) as u32;
    let want = cfg(&FILTER_TGID);
    if want != 0 && tgid != want {
        return false;
    }
    // SAFETY: lookup only.
    if cfg(&FILTER_TRACKED) != 0 && unsafe { TRACKED.get(&tgid) }.is_none() {
        return false;
    }
    if cfg(&FILTER_CGROUP) != 0 {
        // SAFETY: helper without arguments; lookup only.
        let id = unsafe { generated::bpf_get_current_cgroup_id() };
        if unsafe { CGROUPS.get(&id) }.is_none() {
            return false;
        }
    }
    if cfg(&FILTER_COMM_SET) != 0 {
        let Ok(comm) = bpf_get_current_comm() else {
            return false;
        };
        // SAFETY: reading a 16-byte .rodata array.
        let want = unsafe { read_volatile(&FILTER_COMM) };
        if comm != want {
            return false;
        }
    }
    true
}

#[inline(always)]
unsafe fn read_ptr(base: *const u8, off: u32) -> Option<*const u8> {
    bpf_probe_read_kernel(base.add(off as usize) as *const *const u8).ok()
}

/// Fills the start of `ev.names` with the names from `dentry` up to the overlay root,
/// leaf first, and sets `depth` and `path_len`.
#[inline(always)]
unsafe fn walk_path(ev: *mut CopyUpEvent, dentry: *const u8) {
    let off_parent = cfg(&OFF_DENTRY_PARENT);
    let off_name = cfg(&OFF_DENTRY_NAME);
    // `d_parent` and `d_name.name` sit within 32 bytes of each other in every kernel
    // layout so far: then one read per step fetches both.
    let diff = off_name.wrapping_sub(off_parent);
    let name_slot =
        (diff.is_multiple_of(8) && (8..32).contains(&diff)).then_some((diff / 8) as usize);
    let buf = (*ev).names.as_mut_ptr();
    let mut d = dentry;
    let mut off: usize = 0;
    let mut depth: u32 = 0;
    for _ in 0..MAX_PATH_DEPTH {
        let pointers = match name_slot {
            Some(i) => bpf_probe_read_kernel(d.add(off_parent as usize) as *const [u64; 4])
                .ok()
                .map(|w| (w[0] as *const u8, w[i & 3] as *const u8)),
            None => read_ptr(d, off_parent).zip(read_ptr(d, off_name)),
        };
        let Some((parent, name)) = pointers else {
            break;
        };
        if parent == d || parent.is_null() {
            // The overlay root is its own parent: the walk is complete.
            (*ev).depth = depth;
            (*ev).path_len = off as u32;
            return;
        }
        if off >= PATH_COMPONENTS_LEN {
            break;
        }
        let n = generated::bpf_probe_read_kernel_str(
            buf.add(off & (PATH_COMPONENTS_LEN - 1)) as *mut _,
            NAME_READ_LEN as u32,
            name as *const _,
        );
        if n <= 0 {
            break;
        }
        off += n as usize;
        depth += 1;
        d = parent;
    }
    (*ev).depth = depth;
    (*ev).path_len = off as u32;
    (*ev).flags |= flags::PATH_TRUNCATED;
}

// ---- syscall context ----

#[kprobe]
pub fn do_fchownat(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !traced(pid_tgid) {
        return 0;
    }
    // do_fchownat(dfd, filename, user, group, flag)
    let st = SyscallState {
        start_ns: now(),
        copy_ups: 0,
        flag: ctx.arg(4).unwrap_or(0),
        filename: ctx.arg(1).unwrap_or(0),
    };
    let _ = SYSCALLS.insert(&tid_of(pid_tgid), &st, 0);
    0
}

/// A chown-family syscall returned: report its latency if it copied up, and drop its
/// state.
#[inline(always)]
fn fchownat_done(ret: i32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = tid_of(pid_tgid);
    let Some(st) = SYSCALLS.get_ptr(&tid) else {
        return;
    };
    // Every copy-up finishes before its syscall returns: one still in flight that began
    // during this syscall lost its return probe (the kernel skips it when all kretprobe
    // instances are in use). Send it now, timed to the syscall's return, rather than
    // lose it. One from before the syscall is stale (a missed return elsewhere): drop it.
    // SAFETY: lookups of values owned by this thread's key.
    if let Some(f) = unsafe { INFLIGHT.get(&tid) } {
        if f.start_ns >= unsafe { (*st).start_ns } {
            bump(counter::MISSED_RETURNS);
            copy_up_done(ret, flags::RETURN_MISSED);
        } else {
            let _ = INFLIGHT.remove(&tid);
        }
    }
    // SAFETY: map value owned by this thread's key.
    let (start, n, flag) = unsafe { ((*st).start_ns, (*st).copy_ups, (*st).flag) };
    if n > 0 {
        op_done(pid_tgid, op::FCHOWNAT, start, n, ret, 0, flag);
    }
    let _ = SYSCALLS.remove(&tid);
}

/// Where the kernel has no syscall-exit tracepoints.
#[kretprobe]
pub fn do_fchownat_ret(ctx: RetProbeContext) -> u32 {
    fchownat_done(ctx.ret::<i64>() as i32);
    0
}

/// `syscalls:sys_exit_{chown,lchown,fchownat}`: unlike a kretprobe, a tracepoint has no
/// limit on how many threads can be inside the syscall.
#[tracepoint]
pub fn chown_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: reading the `long ret` field at the offset from its format file.
    let ret = unsafe { ctx.read_at::<i64>(cfg(&SYS_EXIT_RET_OFF) as usize) }.unwrap_or(0);
    fchownat_done(ret as i32);
    0
}

/// Reports the latency of a syscall or operation that caused copy-ups.
#[inline(always)]
fn op_done(
    pid_tgid: u64,
    op: u32,
    start_ns: u64,
    copy_ups: u32,
    ret: i32,
    ia_valid: u32,
    op_flags: u32,
) {
    let ev = OpDoneEvent {
        record: record::OP_DONE,
        op,
        start_ns,
        duration_ns: now() - start_ns,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        copy_ups,
        ret,
        ia_valid,
        flags: op_flags,
    };
    if EVENTS.output::<OpDoneEvent>(&ev, notify_flags()).is_err() {
        bump(counter::LOST_EVENTS);
    }
}

// ---- overlayfs operations that copy up ----

#[inline(always)]
fn op_enter(op: u32, ia_valid: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Inside chown the syscall's own state names the trigger and carries the latency.
    // SAFETY: lookup only.
    if unsafe { SYSCALLS.get(&tid_of(pid_tgid)) }.is_some() || !traced(pid_tgid) {
        return 0;
    }
    let st = OpState {
        start_ns: now(),
        op,
        ia_valid,
        copy_ups: 0,
        copy_flags: 0,
    };
    let _ = OPS.insert(&tid_of(pid_tgid), &st, 0);
    0
}

/// Return probe shared by every operation entry point.
#[kretprobe]
pub fn op_ret(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = tid_of(pid_tgid);
    if let Some(st) = OPS.get_ptr(&tid) {
        // SAFETY: map value owned by this thread's key.
        let st = unsafe { *st };
        if st.copy_ups > 0 {
            op_done(
                pid_tgid,
                st.op,
                st.start_ns,
                st.copy_ups,
                ctx.ret::<i64>() as i32,
                st.ia_valid,
                st.copy_flags,
            );
        }
        let _ = OPS.remove(&tid);
    }
    0
}

macro_rules! op_probe {
    ($(#[$doc:meta])* $name:ident => $op:expr) => {
        $(#[$doc])*
        #[kprobe]
        pub fn $name(_ctx: ProbeContext) -> u32 {
            op_enter($op, 0)
        }
    };
}

op_probe!(
    /// `ovl_open`: open for write or with O_TRUNC copies the file up.
    op_open => op::OPEN);
op_probe!(
    /// Directory operations copy up the parent directory (and, for link and rename,
    /// the source).
    op_create => op::CREATE);
op_probe!(op_mkdir => op::MKDIR);
op_probe!(op_mknod => op::MKNOD);
op_probe!(op_symlink => op::SYMLINK);
op_probe!(op_link => op::LINK);
op_probe!(op_unlink => op::UNLINK);
op_probe!(op_rmdir => op::RMDIR);
op_probe!(op_rename => op::RENAME);
op_probe!(op_tmpfile => op::TMPFILE);

// Argument positions differ between kernels, and the verifier only allows constant
// offsets into the register context, so each position gets its own program; user space
// attaches the one `plan` chose.

/// Setting an xattr with a NULL value removes it.
#[inline(always)]
fn xattr_entry<const VALUE_ARG: usize>(ctx: &ProbeContext) -> u32 {
    let value: u64 = ctx.arg(VALUE_ARG).unwrap_or(0);
    op_enter(
        if value == 0 {
            op::REMOVEXATTR
        } else {
            op::SETXATTR
        },
        0,
    )
}

/// `ovl_xattr_set(dentry, inode, name, value, size, flags)`.
#[kprobe]
pub fn op_xattr_v3(ctx: ProbeContext) -> u32 {
    xattr_entry::<3>(&ctx)
}

/// `ovl_other_xattr_set(handler, ns|idmap, dentry, inode, name, value, size, flags)`.
#[kprobe]
pub fn op_xattr_v5(ctx: ProbeContext) -> u32 {
    xattr_entry::<5>(&ctx)
}

#[inline(always)]
fn setattr_entry<const ATTR_ARG: usize>(ctx: &ProbeContext) -> u32 {
    let attr: *const u8 = ctx.arg(ATTR_ARG).unwrap_or(core::ptr::null());
    // SAFETY: bounded kernel read of an int.
    let valid: u32 =
        unsafe { bpf_probe_read_kernel(attr.add(cfg(&OFF_IATTR_VALID) as usize) as *const u32) }
            .unwrap_or(0);
    op_enter(op::SETATTR, valid)
}

/// `ovl_setattr(dentry, attr)`, before 5.12.
#[kprobe]
pub fn ovl_setattr_a1(ctx: ProbeContext) -> u32 {
    setattr_entry::<1>(&ctx)
}

/// `ovl_setattr(user_ns | idmap, dentry, attr)`.
#[kprobe]
pub fn ovl_setattr_a2(ctx: ProbeContext) -> u32 {
    setattr_entry::<2>(&ctx)
}

// ---- the copy-up itself ----

#[kprobe]
pub fn ovl_copy_up_one(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !traced(pid_tgid) {
        return 0;
    }
    // ovl_copy_up_one(parent, dentry, flags) on every kernel that has it.
    let dentry: *const u8 = ctx.arg(1).unwrap_or(core::ptr::null());
    let mut st = InFlight {
        start_ns: now(),
        data_start_ns: 0,
        data_ns: 0,
        bytes: 0,
        size: 0,
        dentry: dentry as u64,
        mode: 0,
        dev: 0,
        copy_flags: ctx.arg(2).unwrap_or(0),
        state: 0,
        kstack_id: -1,
        ustack_id: -1,
    };
    // SAFETY: kernel pointers are only read through bpf_probe_read_kernel.
    unsafe {
        // Mode and size as the copy-up begins: a truncate or chmod changes them after.
        if let Some(inode) = read_ptr(dentry, cfg(&OFF_DENTRY_INODE)) {
            if !inode.is_null() {
                st.mode =
                    bpf_probe_read_kernel(inode.add(cfg(&OFF_INODE_MODE) as usize) as *const u16)
                        .unwrap_or(0) as u32;
                st.size =
                    bpf_probe_read_kernel(inode.add(cfg(&OFF_INODE_SIZE) as usize) as *const u64)
                        .unwrap_or(0);
            }
        }
        st.dev = match read_ptr(dentry, cfg(&OFF_DENTRY_SB)) {
            Some(sb) if !sb.is_null() => {
                bpf_probe_read_kernel(sb.add(cfg(&OFF_SB_DEV) as usize) as *const u32).unwrap_or(0)
            }
            _ => 0,
        };
    }
    if cfg(&CAPTURE_STACKS) != 0 {
        const BPF_F_USER_STACK: u64 = 1 << 8;
        st.kstack_id = ctx
            .get_stackid(&STACKS, 0)
            .map(|id| id as i32)
            .unwrap_or(-1);
        st.ustack_id = ctx
            .get_stackid(&STACKS, BPF_F_USER_STACK)
            .map(|id| id as i32)
            .unwrap_or(-1);
    }
    if INFLIGHT.insert(&tid_of(pid_tgid), &st, 0).is_err() {
        bump(counter::LOST_STATE);
    }
    0
}

#[kretprobe]
pub fn copy_up_one_ret(ctx: RetProbeContext) -> u32 {
    copy_up_done(ctx.ret::<i64>() as i32, 0);
    0
}

/// The copy-up in flight on this thread is over: send its record. `ret` is
/// `ovl_copy_up_one`'s return value, or the syscall's when its return probe was missed
/// (`flags::RETURN_MISSED` in `extra_flags`).
#[inline(always)]
fn copy_up_done(ret: i32, extra_flags: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = tid_of(pid_tgid);
    let Some(st) = INFLIGHT.get_ptr(&tid) else {
        return;
    };
    // SAFETY: map value owned by this thread's key; copied out before the entry goes.
    let st = unsafe { *st };
    let _ = INFLIGHT.remove(&tid);
    let end = now();
    let waited = ret == 0 && cfg(&SEES_WAITS) != 0 && st.state & inflight::ENDED == 0;

    let sys = SYSCALLS.get_ptr_mut(&tid);
    let ops = OPS.get_ptr_mut(&tid);
    if !waited {
        // SAFETY: map values owned by this thread's key.
        unsafe {
            if let Some(o) = ops {
                (*o).copy_ups += 1;
                (*o).copy_flags = st.copy_flags;
            }
            if let Some(s) = sys {
                (*s).copy_ups += 1;
            }
        }
    }

    let Some(ev) = EVENT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `ev` is this CPU's scratch slot (kprobe programs do not nest on a CPU);
    // every header field is written before the record is sent; kernel and user pointers
    // are only read through the probe-read helpers.
    unsafe {
        (*ev).record = record::COPY_UP;
        (*ev).start_ns = st.start_ns;
        (*ev).copy_ns = end - st.start_ns;
        (*ev).data_ns = st.data_ns;
        (*ev).bytes = st.bytes;
        (*ev).size = st.size;
        (*ev).cgroup_id = generated::bpf_get_current_cgroup_id();
        (*ev).pid = (pid_tgid >> 32) as u32;
        (*ev).tid = tid;
        (*ev).ret = ret;
        (*ev).mode = st.mode;
        (*ev).copy_flags = st.copy_flags;
        (*ev).dev = st.dev;
        (*ev).kstack_id = st.kstack_id;
        (*ev).ustack_id = st.ustack_id;
        (*ev)._pad = 0;
        (*ev).filename_len = 0;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        let task = generated::bpf_get_current_task() as *const u8;
        (*ev).ppid = match read_ptr(task, cfg(&OFF_TASK_REAL_PARENT)) {
            Some(parent) => {
                bpf_probe_read_kernel(parent.add(cfg(&OFF_TASK_TGID) as usize) as *const u32)
                    .unwrap_or(0)
            }
            None => 0,
        };
        (*ev).flags = extra_flags | if waited { flags::WAITED } else { 0 };
        match sys {
            Some(s) => {
                (*ev).flags |= flags::IN_FCHOWNAT;
                (*ev).syscall_start_ns = (*s).start_ns;
                (*ev).syscall_flag = (*s).flag;
            }
            None => {
                (*ev).syscall_start_ns = 0;
                (*ev).syscall_flag = 0;
            }
        }
        match ops {
            Some(o) => {
                (*ev).op = (*o).op;
                (*ev).op_start_ns = (*o).start_ns;
                (*ev).ia_valid = (*o).ia_valid;
            }
            None => {
                (*ev).op = op::NONE;
                (*ev).op_start_ns = 0;
                (*ev).ia_valid = 0;
            }
        }
        walk_path(ev, st.dentry as *const u8);
        let path_len = (*ev).path_len as usize & (2 * PATH_COMPONENTS_LEN - 1);
        if let Some(s) = sys {
            // Still the caller's memory: the syscall has not returned.
            let n = generated::bpf_probe_read_user_str(
                (*ev).names.as_mut_ptr().add(path_len) as *mut _,
                FILENAME_LEN as u32,
                (*s).filename as *const _,
            );
            if n > 0 {
                (*ev).filename_len = n as u32;
                (*ev).flags |= flags::HAS_FILENAME;
            }
        }
        // Only the used part of `names` goes into the ring.
        let len =
            COPY_UP_HEADER_LEN + path_len + ((*ev).filename_len as usize & (2 * FILENAME_LEN - 1));
        let record = core::slice::from_raw_parts(ev as *const u8, len);
        if EVENTS.output::<[u8]>(record, notify_flags()).is_err() {
            bump(counter::LOST_EVENTS);
        }
    }
}

/// Reached only by the thread that does the copy-up: a thread that found it done by
/// another (`ovl_copy_up_start` returning 1) skips it.
#[kprobe]
pub fn ovl_copy_up_end(_ctx: ProbeContext) -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    if let Some(st) = INFLIGHT.get_ptr_mut(&tid) {
        // SAFETY: map value owned by this thread's key.
        unsafe { (*st).state |= inflight::ENDED };
    }
    0
}

// ---- data copy: ovl_copy_up_file, or ovl_copy_up_data where that is the data path ----

#[inline(always)]
fn add_data(len: u64) -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    let Some(st) = INFLIGHT.get_ptr_mut(&tid) else {
        return 0;
    };
    // SAFETY: map value owned by this thread's key.
    unsafe {
        (*st).bytes += len;
        (*st).data_start_ns = now();
    }
    0
}

#[inline(always)]
fn len_arg<const N: usize>(ctx: &ProbeContext) -> u64 {
    let len: i64 = ctx.arg(N).unwrap_or(0);
    if len > 0 {
        len as u64
    } else {
        0
    }
}

/// Length as the 3rd argument: `ovl_copy_up_file(old, new, len)` and
/// `ovl_copy_up_data(old, new, len)` before 5.10.
#[kprobe]
pub fn copy_data_a2(ctx: ProbeContext) -> u32 {
    add_data(len_arg::<2>(&ctx))
}

/// Length as the 4th argument: `ovl_copy_up_file(ofs, dentry, new_file, len[, datasync])`
/// since 5.10, `ovl_copy_up_data(ofs, old, new, len)` in 5.10..6.0.
#[kprobe]
pub fn copy_data_a3(ctx: ProbeContext) -> u32 {
    add_data(len_arg::<3>(&ctx))
}

/// `ovl_copy_up_data(c, temp)` since 6.1: size and mode from `c->stat`; it returns
/// early without copying for anything but a non-empty regular file.
#[kprobe]
pub fn copy_data_ctx(ctx: ProbeContext) -> u32 {
    let c: *const u8 = ctx.arg(0).unwrap_or(core::ptr::null());
    // SAFETY: bounded kernel reads of two scalars.
    let len = unsafe {
        let mode =
            bpf_probe_read_kernel(c.add(cfg(&CTX_MODE_OFF) as usize) as *const u16).unwrap_or(0);
        let size =
            bpf_probe_read_kernel(c.add(cfg(&CTX_SIZE_OFF) as usize) as *const i64).unwrap_or(0);
        if mode as u32 & 0o170000 == 0o100000 && size > 0 {
            size as u64
        } else {
            0
        }
    };
    add_data(len)
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

// ---- process-tree scoping for `-- COMMAND` ----

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: lookup only.
    if unsafe { TRACKED.get(&tgid) }.is_none() {
        return 0;
    }
    // SAFETY: reading a field of the tracepoint record at an offset from its format file.
    let child: u32 = match unsafe { ctx.read_at::<u32>(cfg(&FORK_CHILD_PID_OFF) as usize) } {
        Ok(c) => c,
        Err(_) => return 0,
    };
    if TRACKED.insert(&child, &1, 0).is_err() {
        warn!(
            &ctx,
            "process-tree map full: child {} of {} not tracked", child, tgid
        );
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
