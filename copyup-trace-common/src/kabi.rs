//! Kernel ABI constants that the eBPF side, user space, the benchmark and the tests all
//! use: stable UAPI values, one definition each. Struct offsets and argument positions
//! that change between kernels are not here; they come from BTF at start-up (`config`).

/// `TASK_COMM_LEN`.
pub const TASK_COMM_LEN: usize = 16;

/// File type bits of `i_mode` / `st_mode` (include/uapi/linux/stat.h).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Open flags (include/uapi/asm-generic/fcntl.h).
pub const O_WRONLY: u32 = 0o1;
pub const O_TRUNC: u32 = 0o1000;

/// `fchownat(2)`'s flag for lchown (include/uapi/linux/fcntl.h).
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;

/// `struct iattr::ia_valid` bits (include/linux/fs.h), stable since 2.6.
pub const ATTR_MODE: u32 = 1 << 0;
pub const ATTR_UID: u32 = 1 << 1;
pub const ATTR_GID: u32 = 1 << 2;
pub const ATTR_SIZE: u32 = 1 << 3;
pub const ATTR_ATIME: u32 = 1 << 4;
pub const ATTR_MTIME: u32 = 1 << 5;
pub const ATTR_CTIME: u32 = 1 << 6;

/// `bpf_get_stackid` flag: the user stack rather than the kernel's.
pub const BPF_F_USER_STACK: u64 = 1 << 8;

/// Whether `mode` is a regular file's.
pub const fn is_reg(mode: u32) -> bool {
    mode & S_IFMT == S_IFREG
}

/// `BPF_OBJ_NAME_LEN`: the kernel keeps a program's name to this many bytes with its
/// NUL, so `bpftool` and `/proc` show at most 15 characters of it.
pub const BPF_OBJ_NAME_LEN: usize = 16;
