//! Types shared by the eBPF programs and user space. Everything here is `#[repr(C)]`
//! plain data: the kernel side writes it into the ring buffer byte for byte and user
//! space reads it back, so both sides must agree on the layout.
#![no_std]

/// Bytes of a task's comm (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes kept of the syscall's filename argument (user memory, NUL-terminated).
pub const FILENAME_LEN: usize = 256;
/// Largest single name component read per step of the path walk (`NAME_MAX` + NUL).
pub const NAME_READ_LEN: usize = 256;
/// Space for path components; a power of two so the eBPF side can mask offsets.
pub const PATH_COMPONENTS_LEN: usize = 1024;
/// The path buffer has a full component of slack after the masked offset so that the
/// verifier can prove every read stays inside it.
pub const PATH_BUF_LEN: usize = PATH_COMPONENTS_LEN + NAME_READ_LEN;
/// Upper bound on `d_parent` steps from the copied dentry to the overlay root.
pub const MAX_PATH_DEPTH: u32 = 32;

/// `CopyUpEvent::flags` bits.
pub mod flags {
    /// The walk stopped before the overlay root (too deep or too long).
    pub const PATH_TRUNCATED: u32 = 1 << 0;
    /// The copy-up happened inside `do_fchownat` (chown, lchown, fchownat).
    pub const IN_FCHOWNAT: u32 = 1 << 1;
    /// The copy-up happened inside `ovl_setattr`; `ia_valid` holds its attribute mask.
    pub const IN_SETATTR: u32 = 1 << 2;
    /// `ovl_copy_up_start` found the copy-up already done by another thread: this
    /// thread waited, nothing was copied by it.
    pub const WAITED: u32 = 1 << 3;
    /// The filename argument of the syscall was captured.
    pub const HAS_FILENAME: u32 = 1 << 4;
}

/// One completed copy-up of one overlay object, as sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CopyUpEvent {
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
    pub cgroup_id: u64,
    /// Entry time of the data-copy function in flight (scratch, not meaningful to readers).
    pub data_start_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// Return value of `ovl_copy_up_one` (0 or a negative errno).
    pub ret: i32,
    /// `i_mode` of the overlay inode being copied up.
    pub mode: u32,
    /// `flags::*`.
    pub flags: u32,
    /// `ia_valid` of the enclosing `ovl_setattr`, when `IN_SETATTR`.
    pub ia_valid: u32,
    /// Number of components in `path`.
    pub depth: u32,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_LEN],
    /// Path components from the copied object up to (not including) the overlay root,
    /// leaf first, each NUL-terminated.
    pub path: [u8; PATH_BUF_LEN],
}

/// Per-thread state of a syscall that may cause copy-ups.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallState {
    pub start_ns: u64,
    pub filename: [u8; FILENAME_LEN],
}

/// Indexes into the `COUNTERS` per-CPU array.
pub mod counter {
    /// Copy-up events dropped because the ring buffer was full.
    pub const LOST_EVENTS: u32 = 0;
    /// Copy-ups whose in-flight state could not be stored (should stay 0).
    pub const LOST_STATE: u32 = 1;
    pub const COUNT: u32 = 2;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain old data with no padding-dependent invariants.
    unsafe impl aya::Pod for super::CopyUpEvent {}
    unsafe impl aya::Pod for super::SyscallState {}
}
