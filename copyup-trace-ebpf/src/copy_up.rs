//! The copy-up itself (`ovl_copy_up_one`): a small `InFlight` record at entry, and at
//! return one ring-buffer record with the path walked up to the overlay root, the
//! causing syscall or operation, and the data-copy totals `data` added. Waits for
//! another thread's copy-up are told apart through `ovl_copy_up_end`. A copy-up of
//! another overlay entered while one is in flight on the thread nests in it: it gets
//! the next level's state and the outer one's cause.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel, generated},
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{
        tracing::StackIdContext, FEntryContext, FExitContext, ProbeContext, RetProbeContext,
    },
};
use copyup_trace_common::{
    config::entry_at, counter, flags, inflight, inflight_key, kabi, record, CallId, CopyUpHeader,
    InFlight, OpState, SyscallState, COPY_UP_HEADER_LEN, FILENAME_LEN, MAX_NEST, MAX_PATH_DEPTH,
    NAME_READ_LEN, PATH_COMPONENTS_LEN,
};

use crate::{
    config::{arg, conf},
    maps::{
        bump, current_call, innermost, nest_level, notify_flags, now, op_state, read_or_zero,
        read_ptr, scratch, scratch_done, syscall_state, tgid_of, tid_of, traced, Btf, Kmem, Probe,
        EVENTS, INFLIGHT, STACKS,
    },
};

// ovl_copy_up_one(parent, dentry, flags) on every kernel that has it.
#[kprobe]
pub fn ovl_copy_up_one(ctx: ProbeContext) -> u32 {
    let Some(dentry) = arg(&ctx, conf!(args.copy_up_dentry)) else {
        return 0;
    };
    copy_up_enter::<_, Probe>(&ctx, dentry, ctx.arg(2).unwrap_or(0)).unwrap_or(0)
}

#[fentry(function = "ovl_copy_up_one")]
pub fn fe_copy_up_one(ctx: FEntryContext) -> u32 {
    copy_up_enter::<_, Btf>(&ctx, ctx.arg::<u64>(1), ctx.arg::<u64>(2) as u32).unwrap_or(0)
}

/// `ctx` only serves the stack helper; `K` reads `dentry` and the objects it points to.
#[inline(always)]
fn copy_up_enter<C: StackIdContext, K: Kmem>(ctx: &C, dentry: u64, copy_flags: u32) -> Option<u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !traced(pid_tgid) {
        return None;
    }
    let dentry = dentry as *const u8;
    let mut st = InFlight {
        call: current_call(),
        start_ns: now(),
        data_start_ns: 0,
        data_ns: 0,
        bytes: 0,
        size: 0,
        dentry: dentry as u64,
        mode: 0,
        dev: 0,
        copy_flags,
        state: 0,
        kstack_id: -1,
        ustack_id: -1,
        layer: 0,
        data_layer: 0,
    };
    // SAFETY: kernel pointers are only read as `K` and bpf_probe_read_kernel check.
    unsafe {
        // Mode and size as the copy-up begins: a truncate or chmod changes them after.
        let inode = K::get::<u64>(dentry, conf!(off.dentry_inode)) as *const u8;
        if !inode.is_null() {
            st.mode = K::get::<u16>(inode, conf!(off.inode_mode)) as u32;
            st.size = K::get(inode, conf!(off.inode_size));
            // The overlay's own part of the inode lies past `struct inode`, where only a
            // probe read goes.
            (st.layer, st.data_layer) = source_layers(dentry, inode);
        }
        let sb = K::get::<u64>(dentry, conf!(off.dentry_sb)) as *const u8;
        if !sb.is_null() {
            st.dev = K::get(sb, conf!(off.sb_dev));
        }
    }
    if conf!(capture_stacks) != 0 {
        let stack = |flags| ctx.get_stackid(&STACKS, flags).map_or(-1, |id| id as i32);
        st.kstack_id = stack(0);
        st.ustack_id = stack(kabi::BPF_F_USER_STACK);
    }
    let tid = tid_of(pid_tgid);
    // Nested in the copy-ups in flight on this thread if they are another overlay's in
    // this same syscall; one of the same overlay cannot be in flight (a copy-up does not
    // copy up its own overlay), nor one of another syscall: it is a missed return's
    // leftover, and this copy-up takes its place.
    let mut level = 0;
    while level < MAX_NEST {
        // SAFETY: lookup only.
        match unsafe { INFLIGHT.get(&inflight_key(tid, level)) } {
            Some(outer) if outer.dev != st.dev && outer.call == st.call => level += 1,
            _ => break,
        }
    }
    if level >= MAX_NEST || INFLIGHT.insert(&inflight_key(tid, level), &st, 0).is_err() {
        bump(counter::LOST_STATE);
        return None;
    }
    // A leftover one level deeper would be taken for the innermost copy-up.
    let _ = INFLIGHT.remove(&inflight_key(tid, level + 1));
    Some(0)
}

/// Most lower layers an overlay takes (`OVL_MAX_STACK`).
const MAX_STACK: u32 = 500;

/// The layers a copy-up of `dentry` (overlay inode `inode`) copies from, as the kernel
/// numbers them (`ovl_layer.idx`, 0 = not known): the first entry of its lower stack,
/// which is where the kernel copies the object from (`ovl_path_lower`), and the last,
/// which holds a metacopy file's data (`ovl_path_lowerdata`). Read from the kernel's own
/// state rather than searched for by path, so that user space needs no descriptor of any
/// layer and a path under a renamed directory is named right.
#[inline(always)]
unsafe fn source_layers(dentry: *const u8, inode: *const u8) -> (u32, u32) {
    let entry = match conf!(lower.entry_at) {
        entry_at::DENTRY => read_ptr(dentry, conf!(lower.entry_off)),
        entry_at::INODE => read_ptr(inode, conf!(lower.entry_off)),
        _ => None,
    };
    let Some(entry) = entry.filter(|p| !p.is_null()) else {
        return (0, 0);
    };
    let n: u32 = read_or_zero(entry, conf!(lower.numlower));
    if n == 0 || n > MAX_STACK {
        return (0, 0);
    }
    let stack = entry.add(conf!(lower.lowerstack) as usize);
    let idx = |at: u32| -> u32 {
        let path = stack.add((at * conf!(lower.path_size)) as usize);
        match read_ptr(path, conf!(lower.path_layer)) {
            Some(layer) if !layer.is_null() => {
                read_or_zero::<i32>(layer, conf!(lower.layer_idx)).max(0) as u32
            }
            _ => 0,
        }
    };
    let top = idx(0);
    let data = if n > 1 { idx(n - 1) } else { top };
    (top, data)
}

#[kretprobe]
pub fn copy_up_one_ret(ctx: RetProbeContext) -> u32 {
    if let (level @ 1.., Some(st)) = nest_level(tid_of(bpf_get_current_pid_tgid())) {
        // SAFETY: map value owned by this thread's key.
        let st = unsafe { &*st };
        copy_up_done(level - 1, st, ctx.ret::<i64>() as i32, 0);
    }
    0
}

/// Sees arguments and return together, and has no instance limit: no return is missed.
/// Sends only the copy-up that began with its argument: when the innermost one in
/// flight is another (this one's entry was not recorded), that one's own return sends
/// it.
#[fexit(function = "ovl_copy_up_one")]
pub fn fx_copy_up_one(ctx: FExitContext) -> u32 {
    let dentry = ctx.arg::<u64>(1);
    if let (level @ 1.., Some(st)) = nest_level(tid_of(bpf_get_current_pid_tgid())) {
        // SAFETY: map value owned by this thread's key.
        let st = unsafe { &*st };
        if st.dentry == dentry {
            let ret = ctx.ret::<i64>().unwrap_or(0) as i32;
            copy_up_done(level - 1, st, ret, 0);
        }
    }
    0
}

/// Reached only by the thread that does the copy-up: a thread that found it done by
/// another (`ovl_copy_up_start` returning 1) skips it.
#[kprobe]
pub fn ovl_copy_up_end(_ctx: ProbeContext) -> u32 {
    copy_up_ended()
}

#[fentry(function = "ovl_copy_up_end")]
pub fn fe_copy_up_end(_ctx: FEntryContext) -> u32 {
    copy_up_ended()
}

#[inline(always)]
fn copy_up_ended() -> u32 {
    let tid = tid_of(bpf_get_current_pid_tgid());
    if let Some(st) = innermost(tid) {
        // SAFETY: map value owned by this thread's key.
        unsafe { (*st).state |= inflight::ENDED };
    }
    0
}

/// What the path walk found.
struct Walk {
    depth: u32,
    len: u32,
    truncated: bool,
}

/// Fills the start of `names` with the names from `dentry` up to the overlay root, leaf
/// first, each NUL-terminated. Through probe reads even from a typed argument: 6.1's
/// verifier walks a loop of BTF-checked loads at more than twice the cost (start-up).
#[inline(always)]
unsafe fn walk_path(names: *mut u8, dentry: *const u8) -> Walk {
    let off_parent = conf!(off.dentry_parent);
    let off_name = conf!(off.dentry_name);
    // `d_parent` and `d_name.name` sit within 32 bytes of each other in every kernel
    // layout so far: then one probe read per step fetches both.
    let diff = off_name.wrapping_sub(off_parent);
    let name_slot =
        (diff.is_multiple_of(8) && (8..32).contains(&diff)).then_some((diff / 8) as usize);
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
            return Walk {
                depth,
                len: off as u32,
                truncated: false,
            };
        }
        if off >= PATH_COMPONENTS_LEN {
            break;
        }
        // The compiler knows `off` is below PATH_COMPONENTS_LEN here and would drop the
        // mask, but the verifier may track the bound on another register: a volatile
        // load keeps the mask in the code.
        let at = core::ptr::read_volatile(&off) & (PATH_COMPONENTS_LEN - 1);
        let n = generated::bpf_probe_read_kernel_str(
            names.add(at) as *mut _,
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
    Walk {
        depth,
        len: off as u32,
        truncated: true,
    }
}

/// The syscall and the operation a copy-up happened in. Absent ones are all zero
/// (`op::NONE`, no start time): plain values rather than `Option`s, whose unset payload
/// older verifiers refuse to see copied.
#[derive(Default)]
struct Cause {
    in_syscall: bool,
    sys: SyscallState,
    op: OpState,
}

/// The cause of a copy-up on thread `tid` in syscall `call`, as it is when the copy-up
/// ends; a copy-up that was not a wait is counted in both the syscall and the
/// operation. A nested one has the outer one's cause (operations it nests in leave the
/// state alone) and leaves the operation's flags to the outermost copy-up. State of
/// another syscall is no cause.
#[inline(always)]
fn cause(tid: u32, call: &CallId, waited: bool, copy_flags: u32, nested: bool) -> Cause {
    let mut c = Cause::default();
    // SAFETY: map values owned by this thread's key, copied out, then updated in place.
    unsafe {
        if let Some(o) = op_state(tid, call) {
            c.op = *o;
            if !waited {
                (*o).copy_ups += 1;
                if !nested {
                    (*o).copy_flags = copy_flags;
                }
            }
        }
        if let Some(s) = syscall_state(tid, call) {
            c.in_syscall = true;
            c.sys = *s;
            if !waited {
                (*s).copy_ups += 1;
            }
        }
    }
    c
}

/// The syscall's filename argument into `dst`; its length with the NUL, or 0.
#[inline(always)]
unsafe fn read_filename(dst: *mut u8, filename: u64) -> u32 {
    // Still the caller's memory: the syscall has not returned.
    let n = generated::bpf_probe_read_user_str(
        dst as *mut _,
        FILENAME_LEN as u32,
        filename as *const _,
    );
    if n > 0 {
        n as u32
    } else {
        0
    }
}

/// The current task's parent's tgid.
#[inline(always)]
fn ppid() -> u32 {
    // Through probe reads even where the task is typed: a BTF-checked load from
    // `task_struct` makes the verifier search its hundreds of members at every visit,
    // about 150 ms of start-up (6.12, icount) for two helper calls a copy-up.
    // SAFETY: the current task, read only through bpf_probe_read_kernel.
    unsafe {
        let task = generated::bpf_get_current_task() as *const u8;
        match read_ptr(task, conf!(off.task_real_parent)) {
            Some(parent) => read_or_zero(parent, conf!(off.task_tgid)),
            None => 0,
        }
    }
}

/// The copy-up in flight on this thread at nesting level `level` (its entry `entry`) is
/// over: send its record. `ret` is `ovl_copy_up_one`'s return value, or the syscall's or
/// operation's when its return probe was missed (`flags::RETURN_MISSED` in
/// `extra_flags`).
#[inline(always)]
pub fn copy_up_done(level: u32, entry: &InFlight, ret: i32, extra_flags: u32) -> Option<u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = tid_of(pid_tgid);
    // Copied out before the entry goes.
    let st = *entry;
    let _ = INFLIGHT.remove(&inflight_key(tid, level));
    let end = now();
    let waited = ret == 0 && conf!(sees_waits) != 0 && st.state & inflight::ENDED == 0;
    let nested = level > 0;
    // A nested copy-up is named after the outermost one's flags (an open's O_TRUNC).
    let copy_flags = if nested {
        // SAFETY: lookup of a value owned by this thread's key.
        unsafe { INFLIGHT.get(&inflight_key(tid, 0)) }.map_or(st.copy_flags, |o| o.copy_flags)
    } else {
        st.copy_flags
    };

    let cause = cause(tid, &st.call, waited, copy_flags, nested);

    let slot = scratch(tid)?;
    let ev = slot.ev;
    // SAFETY: `ev` is this thread's scratch record (a thread builds one record at a
    // time: a nested copy-up's is sent before the outer one's is begun); kernel and user
    // pointers are only read through the probe-read helpers.
    unsafe {
        // `level` is parked in the record and read back below, so that it is dead during
        // the path walk: the verifier then walks the path once for every level rather
        // than once per level (5.10 ran out of its instruction budget).
        (*ev).header.nest = level;
        let names = (*ev).names.as_mut_ptr();
        let walk = walk_path(names, st.dentry as *const u8);
        let path_len = walk.len as usize & (2 * PATH_COMPONENTS_LEN - 1);
        let filename_len = if cause.in_syscall {
            read_filename(names.add(path_len), cause.sys.filename)
        } else {
            0
        };
        let mut rec_flags = extra_flags;
        for (set, bit) in [
            (waited, flags::WAITED),
            (walk.truncated, flags::PATH_TRUNCATED),
            (cause.in_syscall, flags::IN_FCHOWNAT),
            (filename_len > 0, flags::HAS_FILENAME),
        ] {
            if set {
                rec_flags |= bit;
            }
        }
        // Without a branch: a branch here doubles what the 5.10 verifier walks through
        // the record's path, past its million instructions. Each is 0 or 1, and only a
        // setattr's or the syscall's state holds a 1 (the other is zero then).
        rec_flags |= (cause.sys.noop | cause.op.noop) * flags::NOOP;
        (*ev).header = CopyUpHeader {
            record: record::COPY_UP,
            op: cause.op.op,
            start_ns: st.start_ns,
            copy_ns: end - st.start_ns,
            data_ns: st.data_ns,
            bytes: st.bytes,
            syscall_start_ns: cause.sys.start_ns,
            op_start_ns: cause.op.start_ns,
            size: st.size,
            cgroup_id: generated::bpf_get_current_cgroup_id(),
            pid: tgid_of(pid_tgid),
            tid,
            ppid: ppid(),
            ret,
            mode: st.mode,
            flags: rec_flags,
            ia_valid: cause.op.ia_valid,
            depth: walk.depth,
            copy_flags,
            syscall_flag: cause.sys.flag,
            dev: st.dev,
            kstack_id: st.kstack_id,
            ustack_id: st.ustack_id,
            path_len: walk.len,
            filename_len,
            nest: core::ptr::read_volatile(&(*ev).header.nest),
            layer: st.layer,
            data_layer: st.data_layer,
            comm: bpf_get_current_comm().unwrap_or_default(),
        };
        // Only the used part of `names` goes into the ring.
        let len = COPY_UP_HEADER_LEN + path_len + (filename_len as usize & (2 * FILENAME_LEN - 1));
        let record = core::slice::from_raw_parts(ev as *const u8, len);
        if EVENTS.output::<[u8]>(record, notify_flags()).is_err() {
            bump(counter::LOST_EVENTS);
        }
    }
    scratch_done(tid, &slot);
    Some(0)
}

/// The syscall or operation that began at `since` on this thread returns with `ret`:
/// every copy-up under it has finished, so one still in flight that began since lost its
/// return probe (the kernel skips it when all kretprobe instances are in use). The
/// outermost is sent now, timed to this return, rather than lost; nested ones are
/// counted (one record per program keeps it within old verifiers' budget). Ones from
/// before `since` are leftovers of a missed return elsewhere: they go.
#[inline(always)]
pub fn flush_missed(since: u64, ret: i32) {
    let tid = tid_of(bpf_get_current_pid_tgid());
    let outer = inflight_key(tid, 0);
    // SAFETY: lookup of a value owned by this thread's key.
    match unsafe { INFLIGHT.get(&outer) } {
        Some(f) if f.start_ns >= since => {
            bump(counter::MISSED_RETURNS);
            copy_up_done(0, f, ret, flags::RETURN_MISSED);
        }
        Some(_) => {
            let _ = INFLIGHT.remove(&outer);
        }
        None => return,
    }
    let mut level = 1;
    while level < MAX_NEST {
        let key = inflight_key(tid, level);
        // SAFETY: lookup of a value owned by this thread's key.
        match unsafe { INFLIGHT.get(&key) } {
            Some(f) => {
                if f.start_ns >= since {
                    bump(counter::MISSED_RETURNS);
                }
                let _ = INFLIGHT.remove(&key);
            }
            None => break,
        }
        level += 1;
    }
}
