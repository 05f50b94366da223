//! Turns raw ring-buffer records into `CopyUp` values and names what triggered them.

use anyhow::{bail, Result};
use copyup_trace_common::{flags, CopyUpEvent, PATH_BUF_LEN};
use serde::Serialize;

/// `ia_valid` bits (include/linux/fs.h), stable since 2.6.
mod attr {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
}

/// What made the kernel copy up, as the user would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Chown,
    Chmod,
    Truncate,
    Utimes,
    Setattr,
    Other,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Chown => "chown",
            Trigger::Chmod => "chmod",
            Trigger::Truncate => "truncate",
            Trigger::Utimes => "utimes",
            Trigger::Setattr => "setattr",
            Trigger::Other => "other",
        }
    }

    /// From the context flags and the setattr mask of the event.
    pub fn classify(event_flags: u32, ia_valid: u32) -> Trigger {
        if event_flags & flags::IN_FCHOWNAT != 0 {
            return Trigger::Chown;
        }
        if event_flags & flags::IN_SETATTR == 0 {
            return Trigger::Other;
        }
        if ia_valid & (attr::UID | attr::GID) != 0 {
            Trigger::Chown
        } else if ia_valid & attr::SIZE != 0 {
            Trigger::Truncate
        } else if ia_valid & attr::MODE != 0 {
            Trigger::Chmod
        } else if ia_valid & (attr::ATIME | attr::MTIME) != 0 {
            Trigger::Utimes
        } else {
            Trigger::Setattr
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    pub fn from_mode(mode: u32) -> Kind {
        match mode & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
        }
    }
}

/// One copy-up of one overlay object. Names are raw bytes: escape before printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyUp {
    /// Kernel monotonic time (ns) when the copy-up began.
    pub start_ns: u64,
    pub copy_ns: u64,
    pub data_ns: u64,
    pub bytes: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub ret: i32,
    pub comm: Vec<u8>,
    pub trigger: Trigger,
    pub kind: Kind,
    /// Path inside the overlay, starting with `/`.
    pub path: Vec<u8>,
    pub path_truncated: bool,
    /// The syscall's own filename argument, when captured.
    pub filename: Option<Vec<u8>>,
    /// Another thread did the copy; this one only waited for it.
    pub waited: bool,
}

fn cstr(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Rebuilds `/a/b/c` from the leaf-first, NUL-separated components.
fn join_path(buf: &[u8], depth: u32) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(depth as usize);
    let mut rest = buf;
    for _ in 0..depth {
        let part = cstr(rest);
        parts.push(part);
        if part.len() >= rest.len() {
            break;
        }
        rest = &rest[part.len() + 1..];
    }
    let mut path = Vec::with_capacity(buf.len());
    for part in parts.iter().rev() {
        path.push(b'/');
        path.extend_from_slice(part);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    path
}

pub fn decode(raw: &[u8]) -> Result<CopyUp> {
    if raw.len() < size_of::<CopyUpEvent>() {
        bail!(
            "short copy-up record: {} bytes, want {}",
            raw.len(),
            size_of::<CopyUpEvent>()
        );
    }
    // SAFETY: length checked; CopyUpEvent is plain old data, any bit pattern is valid.
    let ev: CopyUpEvent = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };
    Ok(from_event(&ev))
}

pub fn from_event(ev: &CopyUpEvent) -> CopyUp {
    debug_assert_eq!(ev.path.len(), PATH_BUF_LEN);
    CopyUp {
        start_ns: ev.start_ns,
        copy_ns: ev.copy_ns,
        data_ns: ev.data_ns,
        bytes: ev.bytes,
        cgroup_id: ev.cgroup_id,
        pid: ev.pid,
        tid: ev.tid,
        ppid: ev.ppid,
        ret: ev.ret,
        comm: cstr(&ev.comm).to_vec(),
        trigger: Trigger::classify(ev.flags, ev.ia_valid),
        kind: Kind::from_mode(ev.mode),
        path: join_path(&ev.path, ev.depth),
        path_truncated: ev.flags & flags::PATH_TRUNCATED != 0,
        filename: (ev.flags & flags::HAS_FILENAME != 0).then(|| cstr(&ev.filename).to_vec()),
        waited: ev.flags & flags::WAITED != 0,
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use copyup_trace_common::{COMM_LEN, FILENAME_LEN};

    /// A zeroed raw event with the given path components (leaf first).
    pub fn raw_event(components: &[&[u8]]) -> CopyUpEvent {
        // SAFETY: plain old data, all-zero is valid.
        let mut ev: CopyUpEvent = unsafe { std::mem::zeroed() };
        let mut off = 0;
        for c in components {
            ev.path[off..off + c.len()].copy_from_slice(c);
            off += c.len() + 1;
        }
        ev.depth = components.len() as u32;
        ev
    }

    #[test]
    fn path_is_rebuilt_root_first() {
        let ev = raw_event(&[b"file", b"c", b"b", b"a"]);
        assert_eq!(from_event(&ev).path, b"/a/b/c/file");
        assert_eq!(from_event(&raw_event(&[])).path, b"/");
    }

    #[test]
    fn decode_bytes_round_trip() {
        let mut ev = raw_event(&[b"big"]);
        ev.bytes = 8 << 20;
        ev.copy_ns = 1_500_000;
        ev.pid = 42;
        ev.tid = 43;
        ev.mode = 0o100644;
        ev.ret = -28;
        ev.flags = flags::IN_FCHOWNAT | flags::HAS_FILENAME;
        ev.comm[..5].copy_from_slice(b"chown");
        ev.filename[..8].copy_from_slice(b"/m/big\0x");
        let raw: &[u8] = unsafe {
            std::slice::from_raw_parts((&ev as *const CopyUpEvent).cast(), size_of::<CopyUpEvent>())
        };
        let c = decode(raw).unwrap();
        assert_eq!(c.bytes, 8388608);
        assert_eq!((c.pid, c.tid, c.ret), (42, 43, -28));
        assert_eq!(c.comm, b"chown");
        assert_eq!(c.filename.as_deref(), Some(&b"/m/big"[..]));
        assert_eq!(c.kind, Kind::File);
        assert_eq!(c.trigger, Trigger::Chown);
        assert_eq!(c.path, b"/big");
        assert!(decode(&raw[..100]).is_err());
        let _ = (COMM_LEN, FILENAME_LEN);
    }

    #[test]
    fn triggers_from_setattr_mask() {
        use flags::*;
        assert_eq!(
            Trigger::classify(IN_FCHOWNAT | IN_SETATTR, 1),
            Trigger::Chown
        );
        // fchown: setattr with ATTR_UID|ATTR_GID|ATTR_CTIME, no do_fchownat.
        assert_eq!(Trigger::classify(IN_SETATTR, 2 | 4 | 64), Trigger::Chown);
        assert_eq!(Trigger::classify(IN_SETATTR, 1 | 64), Trigger::Chmod);
        assert_eq!(
            Trigger::classify(IN_SETATTR, 8 | 32 | 64),
            Trigger::Truncate
        );
        assert_eq!(Trigger::classify(IN_SETATTR, 16 | 32 | 64), Trigger::Utimes);
        assert_eq!(Trigger::classify(IN_SETATTR, 64), Trigger::Setattr);
        assert_eq!(Trigger::classify(0, 0), Trigger::Other);
    }

    #[test]
    fn kinds_from_mode() {
        assert_eq!(Kind::from_mode(0o100600), Kind::File);
        assert_eq!(Kind::from_mode(0o040755), Kind::Dir);
        assert_eq!(Kind::from_mode(0o120777), Kind::Symlink);
        assert_eq!(Kind::from_mode(0o020666), Kind::Other);
    }

    #[test]
    fn truncated_path_is_flagged() {
        let mut ev = raw_event(&[b"x"]);
        ev.flags = flags::PATH_TRUNCATED;
        assert!(from_event(&ev).path_truncated);
    }
}
