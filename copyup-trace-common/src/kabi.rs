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
pub const ATTR_ATIME_SET: u32 = 1 << 7;
pub const ATTR_MTIME_SET: u32 = 1 << 8;
pub const ATTR_KILL_SUID: u32 = 1 << 11;
pub const ATTR_KILL_SGID: u32 = 1 << 12;
pub const ATTR_TOUCH: u32 = 1 << 17;

/// Set-id and group-execute bits of `i_mode`.
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_IXGRP: u32 = 0o0010;

/// Whether a setattr of `valid` that sets `uid`/`gid`/`mode` leaves an inode with `now_*`
/// as it was (its ctime aside): a chown or chmod to what the file already has. Sizes and
/// times change something; a set-id bit that the change would clear does too.
#[allow(clippy::too_many_arguments)]
pub const fn setattr_is_noop(
    valid: u32,
    uid: u32,
    gid: u32,
    mode: u32,
    now_uid: u32,
    now_gid: u32,
    now_mode: u32,
) -> bool {
    const CHANGES: u32 =
        ATTR_SIZE | ATTR_ATIME | ATTR_MTIME | ATTR_ATIME_SET | ATTR_MTIME_SET | ATTR_TOUCH;
    if valid & CHANGES != 0 {
        return false;
    }
    if valid & ATTR_UID != 0 && uid != now_uid {
        return false;
    }
    if valid & ATTR_GID != 0 && gid != now_gid {
        return false;
    }
    if valid & ATTR_MODE != 0 && mode & 0o7777 != now_mode & 0o7777 {
        return false;
    }
    if valid & ATTR_KILL_SUID != 0 && now_mode & S_ISUID != 0 {
        return false;
    }
    let sgid = S_ISGID | S_IXGRP;
    !(valid & ATTR_KILL_SGID != 0 && now_mode & sgid == sgid)
}

/// `bpf_get_stackid` flag: the user stack rather than the kernel's.
pub const BPF_F_USER_STACK: u64 = 1 << 8;

/// Whether `mode` is a regular file's.
pub const fn is_reg(mode: u32) -> bool {
    mode & S_IFMT == S_IFREG
}

/// `BPF_OBJ_NAME_LEN`: the kernel keeps a program's name to this many bytes with its
/// NUL, so `bpftool` and `/proc` show at most 15 characters of it.
pub const BPF_OBJ_NAME_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    const CHOWN: u32 = ATTR_UID | ATTR_GID | ATTR_CTIME | ATTR_KILL_SUID | ATTR_KILL_SGID;

    #[test]
    fn noop_setattrs() {
        let reg = S_IFREG | 0o644;
        // chown 1000:1000 of a file that has it; of one that has 0:0.
        assert!(setattr_is_noop(CHOWN, 1000, 1000, 0, 1000, 1000, reg));
        assert!(!setattr_is_noop(CHOWN, 1000, 1000, 0, 0, 0, reg));
        // Only the group asked for: the owner does not count.
        assert!(setattr_is_noop(ATTR_GID | ATTR_CTIME, 5, 7, 0, 0, 7, reg));
        // chown -1:-1 changes nothing.
        assert!(setattr_is_noop(ATTR_CTIME, 0, 0, 0, 3, 3, reg));
        // chmod to the mode it has, and to another.
        let chmod = ATTR_MODE | ATTR_CTIME;
        assert!(setattr_is_noop(chmod, 0, 0, reg, 0, 0, reg));
        assert!(!setattr_is_noop(chmod, 0, 0, S_IFREG | 0o600, 0, 0, reg));
        // A set-uid file loses the bit to a chown, even to its owner.
        assert!(!setattr_is_noop(CHOWN, 0, 0, 0, 0, 0, reg | S_ISUID));
        // Group-executable set-gid loses it; set-gid alone (mandatory locking) keeps it.
        assert!(!setattr_is_noop(
            CHOWN,
            0,
            0,
            0,
            0,
            0,
            reg | S_ISGID | S_IXGRP
        ));
        assert!(setattr_is_noop(CHOWN, 0, 0, 0, 0, 0, reg | S_ISGID));
        // Sizes and times change something.
        assert!(!setattr_is_noop(ATTR_SIZE, 0, 0, 0, 0, 0, reg));
        assert!(!setattr_is_noop(
            ATTR_MTIME | ATTR_ATIME | ATTR_CTIME,
            0,
            0,
            0,
            0,
            0,
            reg
        ));
    }
}
