//! Kernel releases and the version rules the tool and its tests depend on, each named
//! once: user space plans by them (`plan`, `check`), the guest checks expect by them.
//! Where BTF can answer a question instead, the answer comes from BTF; a rule here is
//! for what BTF cannot tell (a helper's arrival, an unwinder fix) or the fallback where
//! a module has no BTF. A rule that differs by CPU architecture is `arch`'s.

/// `(major, minor)` of a kernel release.
pub type Version = (u32, u32);

/// `(major, minor)` from a release string such as `6.12.57+deb13-amd64` or a Debian ABI
/// such as `6.1.0-41`.
pub fn parse(release: &str) -> Option<Version> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether `release` is `since` or newer; false when it cannot be parsed.
pub fn at_least(release: &str, since: Version) -> bool {
    parse(release).is_some_and(|v| v >= since)
}

/// `ovl_copy_up_file` takes `len` 4th (`ofs` first) from here; 3rd before.
pub const COPY_UP_FILE_OFS_ARG: Version = (5, 10);
/// BPF memory is charged to the memory cgroup, no longer to `RLIMIT_MEMLOCK`.
pub const BPF_MEMCG_ACCOUNTING: Version = (5, 11);
/// `ovl_setattr` takes the mount's user namespace first: `attr` moves from 2nd to 3rd.
pub const SETATTR_USERNS_ARG: Version = (5, 12);
/// `bpf_task_pt_regs`, with which stored state is checked against the syscall in
/// progress (`CallId`).
pub const TASK_PT_REGS: Version = (5, 15);
/// `bpf_get_func_ret`, with which fexit programs read the return value.
pub const FEXIT_RET: Version = (5, 17);
/// `ovl_copy_up_data` takes the copy-up context (`c, temp`), the length inside it.
pub const COPY_UP_DATA_CTX: Version = (6, 1);
/// `struct ovl_entry`'s lower stack, as the kernel side reads it without the overlay
/// module's BTF (5.10's): `numlower` then `lowerstack[]`, from `d_fsdata`.
pub const LOWER_STACK_FIXED: (Version, Version) = ((5, 7), (6, 5));
/// Idmapped mounts (`mount_setattr(MOUNT_ATTR_IDMAP)`).
pub const IDMAPPED_MOUNTS: Version = (5, 12);
/// tmpfs takes idmapped mounts.
pub const TMPFS_IDMAP: Version = (6, 3);
/// Data-only lower layers (`lowerdir=a::b`), and the lower stack held by the overlay
/// inode rather than `d_fsdata`.
pub const DATA_ONLY_LAYERS: Version = (6, 5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse("6.12.57+deb12-amd64"), Some((6, 12)));
        assert_eq!(parse("6.1.0-41-amd64"), Some((6, 1)));
        assert_eq!(parse("6.1.0-41"), Some((6, 1)));
        assert_eq!(parse("5.4"), Some((5, 4)));
        assert_eq!(parse("garbage"), None);
        assert!(at_least("7.3.4+deb13-amd64", FEXIT_RET));
        assert!(!at_least("5.10.0-35-amd64", TASK_PT_REGS));
        assert!(!at_least("garbage", (0, 0)));
    }
}
