//! The maps shared by the probe groups, and the small helpers every program uses
//! (counters, ring-buffer wake-ups, the task filter). No program lives here.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_comm, bpf_ktime_get_ns, bpf_probe_read_kernel, generated},
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
};
use copyup_trace_common::{
    counter, inflight_key, CallId, CopyUpEvent, InFlight, OpState, SyscallState, MAX_NEST,
};

use crate::config::conf;

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Copy-ups in flight, by tid and nesting level (`inflight_key`). LRU so that a missed
/// return probe cannot leak entries.
#[map]
pub static INFLIGHT: LruHashMap<u64, InFlight> = LruHashMap::with_max_entries(1024, 0);

/// `do_fchownat` calls in flight, by tid.
#[map]
pub static SYSCALLS: LruHashMap<u32, SyscallState> = LruHashMap::with_max_entries(4096, 0);

/// Overlayfs operations in flight (setattr, open, xattr, directory ops), by tid.
#[map]
pub static OPS: LruHashMap<u32, OpState> = LruHashMap::with_max_entries(4096, 0);

/// Kernel and user stacks of copy-ups (`--stacks`), by id.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

// Every hash map is preallocated: on kernels before 6.1 the verifier warns (and taints
// the kernel) when a tracing program uses a map that allocates at run time.

/// `--cgroup`: the cgroup ids (the given cgroup and its descendants) to trace.
#[map]
pub static CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(4096, 0);

/// Process tree of `-- COMMAND`: tgids whose copy-ups are traced.
#[map]
pub static TRACKED: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Where a copy-up record is built before its used part is copied into the ring, one
/// per thread: fexit programs can be preempted, so a per-CPU slot could be overwritten
/// half-way by another task's program on the same CPU. A plain hash, not an LRU one: an
/// LRU map hands the oldest entry to a new thread when full, even one its thread is
/// still writing. An entry is made at the start of a thread's record (`scratch`); once
/// the record is sent (`scratch_done`) it is kept for the thread's next record if the
/// thread has a place in `SCRATCH_KEPT`, else removed, so the map holds the kept
/// entries and the records being built at once. A thread that finds it full loses its
/// record, counted in `LOST_STATE`.
#[map]
pub static EVENT_SCRATCH: HashMap<u32, CopyUpEvent> = HashMap::with_max_entries(1024, 0);

/// Threads whose `EVENT_SCRATCH` entry outlives its record, until the thread ends: making
/// an entry copies the whole record and costs more than the rest of building it, so a
/// thread that copies up over and over (`chown -R`) makes one. Its size bounds the kept
/// entries to a quarter of `EVENT_SCRATCH`, leaving the rest for records built at once;
/// the kernel does the counting (an insert into a full map fails).
#[map]
pub static SCRATCH_KEPT: HashMap<u32, u8> = HashMap::with_max_entries(256, 0);

/// The value a thread's scratch record is created from (too large for the BPF stack);
/// never written.
#[map]
pub static EVENT_SEED: PerCpuArray<CopyUpEvent> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn bump(idx: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// Flags for submitting a record: see `Config::wakeup_bytes`.
#[inline(always)]
pub fn notify_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= conf!(wakeup_bytes) as u64 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
pub fn tid_of(pid_tgid: u64) -> u32 {
    pid_tgid as u32
}

#[inline(always)]
pub fn tgid_of(pid_tgid: u64) -> u32 {
    (pid_tgid >> 32) as u32
}

/// Whether the current task passes the user's filters.
#[inline(always)]
pub fn traced(pid_tgid: u64) -> bool {
    let tgid = tgid_of(pid_tgid);
    let want = conf!(filter_tgid);
    if want != 0 && tgid != want {
        return false;
    }
    // SAFETY: lookup only.
    if conf!(filter_tracked) != 0 && unsafe { TRACKED.get(&tgid) }.is_none() {
        return false;
    }
    if conf!(filter_cgroup) != 0 {
        // SAFETY: helper without arguments; lookup only.
        let id = unsafe { generated::bpf_get_current_cgroup_id() };
        if unsafe { CGROUPS.get(&id) }.is_none() {
            return false;
        }
    }
    if conf!(filter_comm_set) != 0 {
        let Ok(comm) = bpf_get_current_comm() else {
            return false;
        };
        if comm != conf!(filter_comm) {
            return false;
        }
    }
    true
}

/// The syscall the current thread is in (`CallId`), from the user registers the kernel
/// saved at its entry; all zero where the kernel has no `bpf_task_pt_regs`.
#[inline(always)]
pub fn current_call() -> CallId {
    if conf!(regs.enabled) == 0 {
        return CallId::default();
    }
    // SAFETY: the current task, from the helper that gives the verifier its type, and so
    // its saved registers too: they are loaded as `Btf` checks.
    unsafe {
        let task = generated::bpf_get_current_task_btf();
        let regs = generated::bpf_task_pt_regs(task) as *const u8;
        if regs.is_null() {
            return CallId::default();
        }
        CallId {
            // 32 bits: arm64's `syscallno` is an `s32`, and a load past its end is
            // refused; x86's `orig_ax` keeps the number in its low half.
            nr: Btf::get::<u32>(regs, conf!(regs.nr)) as u64,
            ip: Btf::get(regs, conf!(regs.ip)),
            sp: Btf::get(regs, conf!(regs.sp)),
        }
    }
}

/// This thread's syscall state, if it belongs to the syscall `call` the thread is in;
/// state another syscall left behind (its return's run skipped) goes.
#[inline(always)]
pub fn syscall_state(tid: u32, call: &CallId) -> Option<*mut SyscallState> {
    let s = SYSCALLS.get_ptr_mut(&tid)?;
    // SAFETY: map value owned by this thread's key.
    if unsafe { (*s).call } == *call {
        return Some(s);
    }
    let _ = SYSCALLS.remove(&tid);
    None
}

/// `syscall_state` for the overlayfs operation in progress.
#[inline(always)]
pub fn op_state(tid: u32, call: &CallId) -> Option<*mut OpState> {
    let o = OPS.get_ptr_mut(&tid)?;
    // SAFETY: map value owned by this thread's key.
    if unsafe { (*o).call } == *call {
        return Some(o);
    }
    let _ = OPS.remove(&tid);
    None
}

/// Whether a return program's run is to be dropped (`Config::skip_returns_of`).
#[inline(always)]
pub fn return_skipped(pid_tgid: u64) -> bool {
    let skip = conf!(skip_returns_of);
    skip != 0 && tgid_of(pid_tgid) == skip
}

/// The pointer at `base + off` in kernel memory.
#[inline(always)]
pub unsafe fn read_ptr(base: *const u8, off: u32) -> Option<*const u8> {
    bpf_probe_read_kernel(base.add(off as usize) as *const *const u8).ok()
}

/// The `T` at `base + off` in kernel memory, or zero.
#[inline(always)]
pub unsafe fn read_or_zero<T: Default>(base: *const u8, off: u32) -> T {
    bpf_probe_read_kernel(base.add(off as usize) as *const T).unwrap_or_default()
}

/// How a program reads the fields of a kernel object it was handed.
pub trait Kmem {
    /// The `T` at `base + off`, or zero.
    unsafe fn get<T: Copy + Default>(base: *const u8, off: u32) -> T;
}

/// A plain load, which the verifier checks against the kernel's BTF and the JIT makes
/// fault-safe (a faulting load reads zero): a helper call fewer per field than `Probe`.
/// Only from a pointer the verifier knows the type of (a fentry/fexit argument, what
/// `bpf_get_current_task_btf` or `bpf_task_pt_regs` return) or a struct pointer loaded
/// from one's member; from any other the program is refused at load.
pub struct Btf;

/// `bpf_probe_read_kernel`, which takes any address: kprobe arguments, pointers read by
/// probe, offsets past the end of the struct the verifier knows.
pub struct Probe;

impl Kmem for Btf {
    #[inline(always)]
    unsafe fn get<T: Copy + Default>(base: *const u8, off: u32) -> T {
        core::ptr::read_volatile(base.add(off as usize) as *const T)
    }
}

impl Kmem for Probe {
    #[inline(always)]
    unsafe fn get<T: Copy + Default>(base: *const u8, off: u32) -> T {
        read_or_zero(base, off)
    }
}

/// This thread's scratch record, for one record: `scratch_done` when it is sent.
#[inline(always)]
pub fn scratch(tid: u32) -> Option<Scratch> {
    let (ev, kept) = match EVENT_SCRATCH.get_ptr_mut(&tid) {
        Some(ev) => (ev, 1),
        None => {
            let seed = EVENT_SEED.get_ptr(0)?;
            // SAFETY: `seed` points at a map value that nothing writes.
            if EVENT_SCRATCH.insert(&tid, unsafe { &*seed }, 0).is_err() {
                bump(counter::LOST_STATE);
                return None;
            }
            (EVENT_SCRATCH.get_ptr_mut(&tid)?, 0)
        }
    };
    // Parked in the record and read back, as a value the verifier does not know: else
    // it carries a state for each of the two ways here through all that follows (the
    // record's path walk and fill), which doubles 6.1's work on every program that
    // sends a record. The field is written again before the record goes.
    // SAFETY: `ev` is this thread's scratch record.
    let kept = unsafe {
        let at = core::ptr::addr_of_mut!((*ev).header.record);
        core::ptr::write_volatile(at, kept);
        core::ptr::read_volatile(at) != 0
    };
    Some(Scratch { ev, kept })
}

/// A thread's scratch record, and whether its entry was already there: an entry
/// outlives its record only where the thread has a place in `SCRATCH_KEPT`, so a found
/// one needs no second look there.
pub struct Scratch {
    pub ev: *mut CopyUpEvent,
    kept: bool,
}

/// The record built in this thread's scratch has been sent: its entry is kept for the
/// thread's next record where `SCRATCH_KEPT` has a place for the thread.
#[inline(always)]
pub fn scratch_done(tid: u32, s: &Scratch) {
    if s.kept || SCRATCH_KEPT.insert(&tid, &1, 0).is_ok() {
        return;
    }
    let _ = EVENT_SCRATCH.remove(&tid);
}

/// Thread `tid` has ended: its scratch entry goes, kept or not.
#[inline(always)]
pub fn scratch_gone(tid: u32) {
    let _ = SCRATCH_KEPT.remove(&tid);
    let _ = EVENT_SCRATCH.remove(&tid);
}

/// Copy-ups in flight on thread `tid`: levels `0..n` are taken, the innermost is `n - 1`;
/// with the innermost's entry, so that no caller looks it up a second time.
#[inline(always)]
pub fn nest_level(tid: u32) -> (u32, Option<*mut InFlight>) {
    let mut n = 0;
    let mut last = None;
    while n < MAX_NEST {
        match INFLIGHT.get_ptr_mut(&inflight_key(tid, n)) {
            Some(st) => last = Some(st),
            None => break,
        }
        n += 1;
    }
    (n, last)
}

/// The innermost copy-up in flight on thread `tid`: the one its data copy, its
/// `ovl_copy_up_end` and its return belong to.
#[inline(always)]
pub fn innermost(tid: u32) -> Option<*mut InFlight> {
    nest_level(tid).1
}
