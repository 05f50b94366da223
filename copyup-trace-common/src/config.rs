//! The kernel side's settings as one typed struct. User space fills a `Config` at
//! start-up (from the command line and from BTF) and writes it into the eBPF object's
//! read-only `CONFIG` global before loading; the verifier then sees every field as a
//! constant. This module only describes the settings; deciding them is `plan`'s job.

use crate::COMM_LEN;

/// Byte offsets of the kernel struct fields the eBPF side reads, from BTF.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    pub dentry_parent: u32,
    /// `d_name` + `qstr.name`.
    pub dentry_name: u32,
    pub dentry_inode: u32,
    pub inode_mode: u32,
    pub inode_size: u32,
    pub dentry_sb: u32,
    pub sb_dev: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub iattr_valid: u32,
    /// `iattr.ia_uid`, `ia_gid`, `ia_mode` (what a setattr asks for) and `inode.i_uid`,
    /// `i_gid` (what the file has): a chown or chmod to what it has is a no-op copy-up.
    pub iattr_uid: u32,
    pub iattr_gid: u32,
    pub iattr_mode: u32,
    pub inode_uid: u32,
    pub inode_gid: u32,
    /// `cgroup.kn`, `kernfs_node.id` (a cgroup's id), `cgroup.root` and
    /// `cgroup_root.hierarchy_id` (0: the unified hierarchy).
    pub cgroup_kn: u32,
    pub kernfs_id: u32,
    pub cgroup_root: u32,
    pub root_hierarchy_id: u32,
}

/// How `struct ovl_entry *` is reached from an overlay dentry (`LowerStack::entry_at`).
pub mod entry_at {
    /// Layout unknown (a kernel whose overlay has no BTF and is not of a known line):
    /// layers are not read.
    pub const NONE: u32 = 0;
    /// `dentry->d_fsdata` (before 6.5).
    pub const DENTRY: u32 = 1;
    /// `container_of(dentry->d_inode, struct ovl_inode, vfs_inode)->oe` (6.5 on): the
    /// offset is taken from the inode pointer.
    pub const INODE: u32 = 2;
}

/// Where the kernel keeps an overlay dentry's lower stack (`struct ovl_entry`: its
/// `numlower` `struct ovl_path`s, each a `struct ovl_layer *` and a dentry, topmost
/// first), from which the kernel side reads the layer a copy-up copies from.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LowerStack {
    /// `entry_at::*`.
    pub entry_at: u32,
    /// `dentry.d_fsdata`, or `ovl_inode.oe` minus `ovl_inode.vfs_inode` (from the inode).
    pub entry_off: u32,
    /// `ovl_entry.numlower` (`__numlower` from 6.5).
    pub numlower: u32,
    /// `ovl_entry.lowerstack` (`__lowerstack` from 6.5).
    pub lowerstack: u32,
    /// `sizeof(struct ovl_path)` and its `layer` member.
    pub path_size: u32,
    pub path_layer: u32,
    /// `ovl_layer.idx`: 0 is the upper layer, lower layers count from 1 topmost.
    pub layer_idx: u32,
}

/// Where `struct pt_regs` keeps a syscall's number, the user instruction pointer and the
/// user stack pointer (`CallId`), read through `bpf_task_pt_regs` (5.15+).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    /// Non-zero: the kernel has `bpf_task_pt_regs`, and stored state is checked at use.
    pub enabled: u32,
    pub nr: u32,
    pub ip: u32,
    pub sp: u32,
}

/// Where the probed functions keep the arguments that moved between kernels.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Args {
    /// `dentry` of `ovl_copy_up_one`.
    pub copy_up_dentry: u32,
    /// `attr` of `ovl_setattr`.
    pub setattr_attr: u32,
    /// `value` of the xattr setter (NULL removes the xattr).
    pub xattr_value: u32,
    /// `len` of the data-copy function, when `data_len_from_ctx` is 0; else the index
    /// of its `struct ovl_copy_up_ctx *c`.
    pub data_len: u32,
    /// Non-zero: the length is `c->stat.size` (`ovl_copy_up_data(c, temp)`, 6.1+),
    /// counted only for regular files.
    pub data_len_from_ctx: u32,
    /// `c->stat.size` and `c->stat.mode` offsets for that form.
    pub ctx_stat_size: u32,
    pub ctx_stat_mode: u32,
}

/// Everything the kernel side is told before it is loaded.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// Only this process (tgid), when non-zero.
    pub filter_tgid: u32,
    /// Non-zero: only processes whose tgid is in `TRACKED` (`-- COMMAND`).
    pub filter_tracked: u32,
    /// Non-zero: only tasks whose cgroup id is in `CGROUPS`.
    pub filter_cgroup: u32,
    /// Non-zero: only tasks whose comm equals `filter_comm`.
    pub filter_comm_set: u32,
    pub filter_comm: [u8; COMM_LEN],
    /// Non-zero: record kernel and user stacks of each copy-up in `STACKS`.
    pub capture_stacks: u32,
    /// Non-zero when `ovl_copy_up_end` is probed: a copy-up that returns 0 without
    /// reaching it waited for another thread's copy-up.
    pub sees_waits: u32,
    /// Wake user space only once this many bytes wait in the ring (an eighth of it): a
    /// wake-up per event costs more than building the event. User space also drains
    /// on a short timer.
    pub wakeup_bytes: u32,
    /// Offset of `ret` in the `syscalls:sys_exit_*` tracepoint records.
    pub sys_exit_ret_off: u32,
    pub args: Args,
    pub off: Offsets,
    pub lower: LowerStack,
    pub regs: Regs,
    /// Fault injection for the tests (`COPYUP_TRACE_SKIP_RETURNS_OF`): the return
    /// programs of syscalls and operations do nothing for this process, as when the
    /// kernel skips their runs; 0 (always, outside the tests) injects nothing, and the
    /// verifier drops the check.
    pub skip_returns_of: u32,
}
