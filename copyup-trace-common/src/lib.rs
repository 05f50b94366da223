//! Facts shared by the eBPF programs, user space and the tests: the `#[repr(C)]` records
//! and per-thread state (the kernel side writes them byte for byte, user space reads them
//! back), the kernel-side settings (`config`), the probe table (`hooks`), kernel ABI
//! constants (`kabi`), kernel releases with the version rules (`kver`), and what differs
//! between the CPU architectures (`arch`). No logic
//! lives here beyond what describes those facts.
#![no_std]

pub mod arch;
pub mod config;
pub mod hooks;
pub mod kabi;
pub mod kver;

pub use config::Config;

/// The port the deploy files and examples serve `--metrics` on: outside Prometheus' full
/// exporter range (9100-9999, where 9435 is ebpf_exporter's).
pub const METRICS_PORT: u16 = 29435;

/// Bytes of a task's comm (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = kabi::TASK_COMM_LEN;
/// Bytes kept of the syscall's filename argument (user memory, NUL-terminated).
pub const FILENAME_LEN: usize = 256;
/// Largest single name component read per step of the path walk (`NAME_MAX` + NUL).
pub const NAME_READ_LEN: usize = 256;
/// Space for path components; a power of two so the eBPF side can mask offsets.
pub const PATH_COMPONENTS_LEN: usize = 1024;
/// The path buffer has a full component of slack after the masked offset so that the
/// verifier can prove every read stays inside it.
pub const PATH_BUF_LEN: usize = PATH_COMPONENTS_LEN + NAME_READ_LEN;
/// Room for the path and, after it, the filename. Sized so that the eBPF side can bound
/// offsets and lengths with masks (path below 2 × PATH_COMPONENTS_LEN, filename below
/// 2 × FILENAME_LEN), which the verifier follows more reliably than comparisons.
pub const NAMES_LEN: usize = 2 * PATH_COMPONENTS_LEN + 2 * FILENAME_LEN;
/// Upper bound on `d_parent` steps from the copied dentry to the overlay root.
pub const MAX_PATH_DEPTH: u32 = 32;
/// Copy-ups tracked in flight at once on one thread: one, and those nested in it (an
/// overlay whose lower layer is another overlay exported with `nfs_export=on` copies up
/// the lower overlay's directory while encoding its file handle).
pub const MAX_NEST: u32 = 4;

/// Key of `INFLIGHT`: the thread, and the copy-up's nesting level on it (0 for the
/// outermost).
pub const fn inflight_key(tid: u32, level: u32) -> u64 {
    ((level as u64) << 32) | tid as u64
}

/// The thread of an `INFLIGHT` key.
pub const fn inflight_tid(key: u64) -> u32 {
    key as u32
}

/// First field of every ring-buffer record: what follows.
pub mod record {
    pub const COPY_UP: u32 = 1;
    pub const OP_DONE: u32 = 2;
    pub const CGROUP: u32 = 3;
}

/// Bytes of a cgroup's path a `CgroupEvent` carries, its NUL included (the kernel formats
/// up to 1024 for the tracepoint; a longer path is cut, and named by the next scan).
pub const CGROUP_PATH_LEN: usize = 512;

/// Sent when a cgroup of the unified hierarchy is made: its id (what
/// `bpf_get_current_cgroup_id` gives its tasks) and path, so that user space can name a
/// copy-up's cgroup even when the cgroup is gone before the copy-up's record is read. It
/// goes through the ring before any record of its tasks.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupEvent {
    /// `record::CGROUP`.
    pub record: u32,
    /// Bytes of `path` before its NUL.
    pub path_len: u32,
    pub id: u64,
    /// From the hierarchy's root, `/` first, NUL-terminated.
    pub path: [u8; CGROUP_PATH_LEN],
}

/// The overlayfs operation (or syscall) a thread is in when it copies up.
pub mod op {
    pub const NONE: u32 = 0;
    pub const SETATTR: u32 = 1;
    pub const OPEN: u32 = 2;
    pub const SETXATTR: u32 = 3;
    pub const REMOVEXATTR: u32 = 4;
    pub const CREATE: u32 = 5;
    pub const MKDIR: u32 = 6;
    pub const MKNOD: u32 = 7;
    pub const SYMLINK: u32 = 8;
    pub const LINK: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const TMPFILE: u32 = 13;
    /// The `do_fchownat` syscall path (chown, lchown, fchownat).
    pub const FCHOWNAT: u32 = 14;
}

/// `CopyUpEvent::flags` bits.
pub mod flags {
    /// The walk stopped before the overlay root (too deep or too long).
    pub const PATH_TRUNCATED: u32 = 1 << 0;
    /// The copy-up happened inside `do_fchownat` (chown, lchown, fchownat).
    pub const IN_FCHOWNAT: u32 = 1 << 1;
    /// `ovl_copy_up_start` found the copy-up already done by another thread: this
    /// thread waited, nothing was copied by it.
    pub const WAITED: u32 = 1 << 3;
    /// The filename argument of the syscall was captured.
    pub const HAS_FILENAME: u32 = 1 << 4;
    /// The kernel skipped this copy-up's return probe (all kretprobe instances in use):
    /// it was sent when its syscall returned, so `copy_ns` runs to that return and `ret`
    /// is the syscall's.
    pub const RETURN_MISSED: u32 = 1 << 5;
    /// Caused by a chown or chmod to the owner and mode the file already had: a copy-up
    /// for nothing.
    pub const NOOP: u32 = 1 << 6;
}

/// The fixed part of a copy-up record: every copy-up record starts with it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CopyUpHeader {
    /// `record::COPY_UP`.
    pub record: u32,
    /// `op::*` of the innermost overlayfs operation in progress.
    pub op: u32,
    /// `bpf_ktime_get_ns()` when `ovl_copy_up_one` was entered.
    pub start_ns: u64,
    /// Whole copy-up: `ovl_copy_up_one` entry to return.
    pub copy_ns: u64,
    /// Time spent in the data-copy function(s).
    pub data_ns: u64,
    /// Bytes of file data copied.
    pub bytes: u64,
    /// Entry time of the enclosing syscall probe (`do_fchownat`), 0 if none.
    pub syscall_start_ns: u64,
    /// Entry time of the enclosing overlayfs operation, 0 if none.
    pub op_start_ns: u64,
    /// `i_size` of the overlay inode when the copy-up began.
    pub size: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// Return value of `ovl_copy_up_one` (0 or a negative errno).
    pub ret: i32,
    /// `i_mode` of the overlay inode being copied up.
    pub mode: u32,
    /// `flags::*`.
    pub flags: u32,
    /// `ia_valid` of the enclosing `ovl_setattr`, when `op` is `op::SETATTR`.
    pub ia_valid: u32,
    /// Number of components in `path`.
    pub depth: u32,
    /// `flags` argument of `ovl_copy_up_one`: open flags for an open, `O_WRONLY` for a
    /// data copy-up forced by truncate, 0 otherwise.
    pub copy_flags: u32,
    /// `flag` argument of `do_fchownat` (`AT_SYMLINK_NOFOLLOW` for lchown).
    pub syscall_flag: u32,
    /// `s_dev` of the overlay superblock, to find the mount point.
    pub dev: u32,
    /// Ids in the `STACKS` map when `--stacks` is on; negative when not captured.
    pub kstack_id: i32,
    pub ustack_id: i32,
    /// Bytes of `names` taken by the path components.
    pub path_len: u32,
    /// Bytes of `names` taken by the filename after the path, its NUL included; 0 when
    /// not captured.
    pub filename_len: u32,
    /// Nesting depth: 0 for a copy-up caused by the syscall or operation itself; n for
    /// one done inside a copy-up of depth n - 1 on the same thread (another overlay's).
    /// A nested copy-up carries the outer one's cause: its syscall, operation and, as
    /// `copy_flags`, the outermost copy-up's flags.
    pub nest: u32,
    /// The layer the copy-up copies from, as the kernel numbers an overlay's layers
    /// (`ovl_layer.idx`: 1 is the topmost lower layer; 0 not known): the first entry of
    /// the dentry's lower stack as the copy-up begins. It is what the kernel copies
    /// metadata from, also under a renamed directory (`redirect_dir`).
    pub layer: u32,
    /// The layer holding the file's data: the last entry of the lower stack (another
    /// layer than `layer` for a metacopy file, a data-only layer for one); 0 not known.
    pub data_layer: u32,
    pub comm: [u8; COMM_LEN],
}

/// One completed copy-up of one overlay object, as sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CopyUpEvent {
    pub header: CopyUpHeader,
    /// The path components from the copied object up to (not including) the overlay
    /// root, leaf first, each NUL-terminated (`path_len` bytes); then the syscall's
    /// filename (`filename_len` bytes). Only the used part travels through the ring:
    /// a record is `COPY_UP_HEADER_LEN + path_len + filename_len` bytes.
    pub names: [u8; NAMES_LEN],
}

/// Bytes of `CopyUpEvent` before `names`: every copy-up record has at least these.
pub const COPY_UP_HEADER_LEN: usize = core::mem::size_of::<CopyUpHeader>();

/// Which syscall a thread is in, from the user registers the kernel saved at its entry
/// (`Config::regs`): the number, the call site and the user stack pointer. State stored
/// with one is taken at use only while the thread is still in that syscall, so that
/// state left behind by a skipped run (a syscall's or operation's return the kernel
/// did not run its program for) is never blamed for a later call. All zero where the
/// kernel cannot tell (before 5.15): then any stored state is taken, as it was stored.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct CallId {
    pub nr: u64,
    pub ip: u64,
    pub sp: u64,
}

/// Per-thread state of a syscall that may cause copy-ups.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SyscallState {
    /// The syscall this state belongs to.
    pub call: CallId,
    pub start_ns: u64,
    /// Copy-ups (not waits) done under this syscall so far.
    pub copy_ups: u32,
    pub flag: u32,
    /// The user-space filename argument: read only when a copy-up is reported, while
    /// the syscall is still in progress.
    pub filename: u64,
    /// Non-zero: its setattr asked for the owner the file already had
    /// (`kabi::setattr_is_noop`).
    pub noop: u32,
    pub _pad: u32,
}

/// Per-thread state of a copy-up in flight: small, because it is copied into a hash map
/// per copy-up. The names (comm, filename, path) are read at return, straight into the
/// ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct InFlight {
    /// The syscall the copy-up happens in.
    pub call: CallId,
    pub start_ns: u64,
    /// Entry time of the data-copy function in flight, 0 when none.
    pub data_start_ns: u64,
    pub data_ns: u64,
    pub bytes: u64,
    pub size: u64,
    /// The `struct dentry *` being copied up; the caller holds a reference until return.
    pub dentry: u64,
    pub mode: u32,
    pub dev: u32,
    pub copy_flags: u32,
    /// `inflight::*`.
    pub state: u32,
    pub kstack_id: i32,
    pub ustack_id: i32,
    /// `CopyUpHeader::layer` and `data_layer`, read at entry.
    pub layer: u32,
    pub data_layer: u32,
}

/// `InFlight::state` bits.
pub mod inflight {
    /// `ovl_copy_up_end` ran: this thread did the copy-up itself rather than wait.
    pub const ENDED: u32 = 1 << 0;
}

/// Per-thread state of an overlayfs operation that may copy up.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct OpState {
    /// The syscall the operation happens in.
    pub call: CallId,
    pub start_ns: u64,
    pub op: u32,
    /// `ia_valid` for SETATTR.
    pub ia_valid: u32,
    pub copy_ups: u32,
    /// `flags` of the last copy-up under this operation (O_TRUNC for an open).
    pub copy_flags: u32,
    /// Operations of another overlay entered, and not yet returned, inside a copy-up
    /// under this operation (reading a lower layer that is an overlay): they leave this
    /// state as it is.
    pub nested: u32,
    /// Non-zero: a SETATTR that asked for the owner and mode the file already had.
    pub noop: u32,
}

/// Sent when a syscall or operation that caused copy-ups returns: its own latency.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpDoneEvent {
    /// `record::OP_DONE`.
    pub record: u32,
    pub op: u32,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub copy_ups: u32,
    pub ret: i32,
    pub ia_valid: u32,
    /// OpState::copy_flags, or do_fchownat's `flag` for op::FCHOWNAT.
    pub flags: u32,
}

/// Indexes into the `COUNTERS` per-CPU array.
pub mod counter {
    /// Copy-up events dropped because the ring buffer was full.
    pub const LOST_EVENTS: u32 = 0;
    /// Copy-ups whose in-flight state could not be stored (should stay 0).
    pub const LOST_STATE: u32 = 1;
    /// Copy-ups whose return probe the kernel skipped (all kretprobe instances in use),
    /// found still in flight when their chown returned and sent then.
    pub const MISSED_RETURNS: u32 = 2;
    pub const COUNT: u32 = 3;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain old data with no padding-dependent invariants.
    unsafe impl aya::Pod for super::CopyUpEvent {}
    unsafe impl aya::Pod for super::CopyUpHeader {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::SyscallState {}
    unsafe impl aya::Pod for super::OpState {}
    unsafe impl aya::Pod for super::InFlight {}
    unsafe impl aya::Pod for super::OpDoneEvent {}
    unsafe impl aya::Pod for super::CgroupEvent {}
}
