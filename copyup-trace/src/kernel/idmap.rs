//! Whether the kernel can idmap a filesystem: tried on a detached copy of the mount
//! (`open_tree(OPEN_TREE_CLONE)` then `mount_setattr(MOUNT_ATTR_IDMAP)`), which is never
//! attached anywhere and goes when its descriptor is closed; nothing of the host changes.
//! It answers for `check`; what a runtime does with the answer is the advice's.

use std::{
    ffi::CString,
    fs, io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

/// `struct mount_attr` (include/uapi/linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;

/// What the kernel said to idmapping one filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idmap {
    /// An idmapped mount of it was made (and dropped).
    Yes,
    /// The filesystem (or this kernel) does not take idmapped mounts.
    No(String),
}

/// A user namespace with a mapping, as an idmapped mount needs one: a child process
/// enters a new one, the mapping is written from here, and the namespace is kept through
/// its descriptor after the child has gone.
fn userns() -> io::Result<OwnedFd> {
    let pipe = || -> io::Result<(OwnedFd, OwnedFd)> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned here alone.
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    };
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    // SAFETY: the child only makes async-signal-safe calls (unshare, write, read, _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child: plain system calls on descriptors it inherited.
        unsafe {
            // Its own copy of the write end would keep the read below from ever ending.
            libc::close(done_w.as_raw_fd());
            let ok: u8 = (libc::unshare(libc::CLONE_NEWUSER) == 0).into();
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut byte = 0u8;
            libc::read(done_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop((ready_w, done_r));
    let result = (|| {
        let mut ok = [0u8; 1];
        let n = fs::File::from(ready_r.try_clone()?);
        io::Read::read_exact(&mut &n, &mut ok)?;
        if ok[0] != 1 {
            return Err(io::Error::other("cannot create a user namespace"));
        }
        for map in ["uid_map", "gid_map"] {
            fs::write(format!("/proc/{pid}/{map}"), "0 100000 65536\n")?;
        }
        Ok(OwnedFd::from(fs::File::open(format!(
            "/proc/{pid}/ns/user"
        ))?))
    })();
    // The child reads until this end closes, then exits.
    drop(done_w);
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    result
}

/// Tries to idmap a detached copy of the mount that holds `path`.
fn try_idmap(path: &Path, userns: &OwnedFd) -> io::Result<Idmap> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path; the result is a new descriptor or -1.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if tree < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) => Ok(Idmap::No(
                "this kernel has no detached mounts (open_tree, 5.2)".into(),
            )),
            _ => Err(e),
        };
    }
    // SAFETY: `tree` is the descriptor just returned, owned here.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: an empty path with AT_EMPTY_PATH names `tree` itself; `attr` is a valid
    // `struct mount_attr` of the size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        return Ok(Idmap::Yes);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSYS) => Ok(Idmap::No(
            "this kernel has no idmapped mounts (mount_setattr, 5.12)".into(),
        )),
        Some(libc::EINVAL) => Ok(Idmap::No(
            "the kernel does not idmap this filesystem".into(),
        )),
        _ => Err(e),
    }
}

/// For each path, whether the kernel can idmap the filesystem it is on.
pub fn idmappable(paths: &[&Path]) -> Vec<io::Result<Idmap>> {
    match userns() {
        Ok(ns) => paths.iter().map(|p| try_idmap(p, &ns)).collect(),
        Err(e) => {
            let why = e.to_string();
            paths
                .iter()
                .map(|_| Err(io::Error::other(why.clone())))
                .collect()
        }
    }
}
