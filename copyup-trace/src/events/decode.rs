//! Turns raw ring-buffer records into `CopyUp` values and names what triggered them.

use std::{os::unix::ffi::OsStrExt, sync::Arc};

use anyhow::{bail, Result};
use copyup_trace_common::{
    flags,
    kabi::{
        ATTR_ATIME, ATTR_GID, ATTR_MODE, ATTR_MTIME, ATTR_SIZE, ATTR_UID, AT_SYMLINK_NOFOLLOW,
        O_TRUNC, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
    },
    op, record, CgroupEvent, CopyUpEvent, CopyUpHeader, OpDoneEvent, COPY_UP_HEADER_LEN,
    MAX_PATH_DEPTH,
};
use serde::Serialize;

use crate::{
    attribution::cgroups::Container,
    attribution::layers::{Layer, OverlayInfo},
};

/// Defines `Trigger` from one table: each variant with the name users see.
macro_rules! triggers {
    ($($(#[$attr:meta])* $variant:ident => $name:literal,)+) => {
        /// What made the kernel copy up, as the user would name it.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Trigger {
            $($(#[$attr])* $variant,)+
        }

        impl Trigger {
            pub const ALL: &'static [Trigger] = &[$(Trigger::$variant,)+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Trigger::$variant => $name,)+
                }
            }
        }
    };
}

triggers! {
    Chown => "chown",
    Lchown => "lchown",
    Fchown => "fchown",
    Chmod => "chmod",
    Truncate => "truncate",
    Utimes => "utimes",
    Setattr => "setattr",
    OpenWrite => "open-write",
    OpenTrunc => "open-trunc",
    Setxattr => "setxattr",
    Removexattr => "removexattr",
    Create => "create",
    Mkdir => "mkdir",
    Mknod => "mknod",
    Symlink => "symlink",
    Link => "link",
    Unlink => "unlink",
    Rmdir => "rmdir",
    Rename => "rename",
    Tmpfile => "tmpfile",
    #[default]
    Other => "other",
}

impl Trigger {
    /// A setattr outside do_fchownat, by its attribute mask.
    fn of_setattr(ia_valid: u32) -> Trigger {
        if ia_valid & (ATTR_UID | ATTR_GID) != 0 {
            // Not through do_fchownat: fchown(2) (or a kernel without that probe).
            Trigger::Fchown
        } else if ia_valid & ATTR_SIZE != 0 {
            Trigger::Truncate
        } else if ia_valid & ATTR_MODE != 0 {
            Trigger::Chmod
        } else if ia_valid & (ATTR_ATIME | ATTR_MTIME) != 0 {
            Trigger::Utimes
        } else {
            Trigger::Setattr
        }
    }

    /// From an operation code and what is known about it: `flags` are the copy-up's
    /// open flags, or do_fchownat's `flag` for `op::FCHOWNAT`.
    pub fn of_op(op_code: u32, ia_valid: u32, copy_flags: u32) -> Trigger {
        match op_code {
            op::SETATTR => Trigger::of_setattr(ia_valid),
            op::OPEN if copy_flags & O_TRUNC != 0 => Trigger::OpenTrunc,
            op::OPEN => Trigger::OpenWrite,
            op::SETXATTR => Trigger::Setxattr,
            op::REMOVEXATTR => Trigger::Removexattr,
            op::CREATE => Trigger::Create,
            op::MKDIR => Trigger::Mkdir,
            op::MKNOD => Trigger::Mknod,
            op::SYMLINK => Trigger::Symlink,
            op::LINK => Trigger::Link,
            op::UNLINK => Trigger::Unlink,
            op::RMDIR => Trigger::Rmdir,
            op::RENAME => Trigger::Rename,
            op::TMPFILE => Trigger::Tmpfile,
            op::FCHOWNAT if copy_flags & AT_SYMLINK_NOFOLLOW != 0 => Trigger::Lchown,
            op::FCHOWNAT => Trigger::Chown,
            _ => Trigger::Other,
        }
    }

    /// A copy-up's trigger: the chown syscall if inside one, else the operation.
    pub fn classify(ev: &CopyUpHeader) -> Trigger {
        if ev.flags & flags::IN_FCHOWNAT != 0 {
            return if ev.syscall_flag & AT_SYMLINK_NOFOLLOW != 0 {
                Trigger::Lchown
            } else {
                Trigger::Chown
            };
        }
        Trigger::of_op(ev.op, ev.ia_valid, ev.copy_flags)
    }
}

impl Serialize for Trigger {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    #[default]
    Other,
}

impl Kind {
    pub fn from_mode(mode: u32) -> Kind {
        match mode & S_IFMT {
            S_IFREG => Kind::File,
            S_IFDIR => Kind::Dir,
            S_IFLNK => Kind::Symlink,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// The return probe was skipped by the kernel: `copy_ns` runs to the syscall's
    /// return and `ret` is the syscall's.
    pub return_missed: bool,
    /// Only metadata was copied (`metacopy=on`): data stays in the lower layer until
    /// the first write-open.
    pub metacopy: bool,
    /// Caused by a chown or chmod to the owner and mode the file already had: a copy-up
    /// that changed nothing but cost its copy.
    pub noop: bool,
    /// Nesting depth: 0, or n for a copy-up another overlay's copy-up (of depth n - 1)
    /// made on the same thread; it carries that one's trigger and cause.
    pub nest: u32,
    /// File size when the copy-up began.
    pub size: u64,
    /// Overlay superblock device (kernel encoding), to find the mount point.
    pub dev: u32,
    /// Start of the enclosing chown syscall or overlayfs operation: joins this copy-up
    /// to the `OpDone` that reports that call's latency.
    pub cause_start_ns: u64,
    /// Filled in by user space after decoding: the overlay's mount point, the cgroup
    /// path and the container it names.
    pub mount: Option<Arc<[u8]>>,
    pub cgroup: Option<Arc<str>>,
    pub container: Option<Arc<Container>>,
    /// The overlay's options and lower stack (filled in by user space).
    pub overlay: Option<Arc<OverlayInfo>>,
    /// The lower layer this copy-up copied from, as its index in the mount's lower
    /// stack (0 = topmost), as the kernel told it; `None` when the kernel side could not
    /// read it.
    pub layer: Option<u32>,
    /// The lower layer holding the file's data, when it is another than `layer` (a
    /// metacopy file's data in a lower or data-only layer).
    pub data_layer: Option<u32>,
    /// Stack ids for `--stacks`; negative when not captured.
    pub kstack_id: i32,
    pub ustack_id: i32,
}

impl CopyUp {
    /// The lower layer this copy-up copied from, when known.
    pub fn lower_layer(&self) -> Option<&Arc<Layer>> {
        self.overlay.as_ref()?.lowers.get(self.layer? as usize)
    }

    /// The lower layer its data came from: `data_layer`, else `layer`.
    pub fn data_source_layer(&self) -> Option<&Arc<Layer>> {
        let idx = self.data_layer.or(self.layer)?;
        self.overlay.as_ref()?.lowers.get(idx as usize)
    }

    /// The absolute path when the mount point is known, else the path in the overlay.
    pub fn display_path(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.display_path_into(&mut out);
        out
    }

    /// `display_path` into a reused buffer (cleared first).
    pub fn display_path_into(&self, out: &mut Vec<u8>) {
        out.clear();
        match &self.mount {
            Some(m) => crate::attribution::mounts::join_mount_into(
                std::path::Path::new(std::ffi::OsStr::from_bytes(m)),
                &self.path,
                out,
            ),
            None => out.extend_from_slice(&self.path),
        }
    }
}

/// A syscall or overlayfs operation that caused copy-ups has returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpDone {
    pub trigger: Trigger,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub copy_ups: u32,
    pub ret: i32,
}

// Records are consumed as soon as they are decoded, never stored in bulk, so the size
// difference costs nothing and boxing would cost an allocation per copy-up.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    CopyUp(CopyUp),
    OpDone(OpDone),
    Cgroup(CgroupMade),
}

/// A cgroup of the unified hierarchy made while tracing (`CgroupEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMade {
    pub id: u64,
    /// From the hierarchy's root, as the scan of `/sys/fs/cgroup` names it (names that
    /// are not UTF-8 with U+FFFD).
    pub path: String,
}

/// The bytes before the first NUL (all of them if there is none). The memchr crate's
/// search is vectorised; this runs several times per event.
fn cstr(bytes: &[u8]) -> &[u8] {
    match memchr::memchr(0, bytes) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// Rebuilds `/a/b/c` from the leaf-first, NUL-separated components into `path`
/// (cleared first).
fn join_path_into(buf: &[u8], depth: u32, path: &mut Vec<u8>) {
    path.clear();
    // (start, end) of each component, leaf first; the kernel side walks at most
    // MAX_PATH_DEPTH levels.
    let mut spans = [(0u16, 0u16); MAX_PATH_DEPTH as usize];
    let mut n = 0;
    let mut start = 0;
    while n < (depth as usize).min(spans.len()) && start < buf.len() {
        let len = cstr(&buf[start..]).len();
        spans[n] = (start as u16, (start + len) as u16);
        n += 1;
        start += len + 1;
    }
    for &(begin, end) in spans[..n].iter().rev() {
        path.push(b'/');
        path.extend_from_slice(&buf[begin as usize..end as usize]);
    }
    if path.is_empty() {
        path.push(b'/');
    }
}

/// Reads a plain-old-data record of type `T` from the start of `raw`.
fn read<T: Copy>(raw: &[u8]) -> Result<T> {
    if raw.len() < size_of::<T>() {
        bail!("short record: {} bytes, want {}", raw.len(), size_of::<T>());
    }
    // SAFETY: length checked; T is a #[repr(C)] plain-old-data record for which any
    // bit pattern is valid.
    Ok(unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) })
}

/// A record decoded by `Decoder`: the copy-up borrows the decoder's reused buffers.
#[derive(Debug)]
pub enum Decoded<'a> {
    CopyUp(&'a mut CopyUp),
    OpDone(OpDone),
    Cgroup(CgroupMade),
}

/// Decodes records into one reused `CopyUp`, so that a steady stream costs no allocation
/// per event: names are copied into buffers that keep their capacity.
#[derive(Default)]
pub struct Decoder {
    copy_up: CopyUp,
    /// Keeps the filename buffer while a record has none.
    spare_filename: Vec<u8>,
    /// The fixed header of the record being decoded (its `names` are not used: they are
    /// read from the record itself).
    header: CopyUpHeader,
}

impl Decoder {
    pub fn decode(&mut self, raw: &[u8]) -> Result<Decoded<'_>> {
        let kind: u32 = read(raw)?;
        match kind {
            record::COPY_UP => {
                // A record is the fixed header and the used part of `names`.
                if raw.len() < COPY_UP_HEADER_LEN {
                    bail!(
                        "short record: {} bytes, want at least {COPY_UP_HEADER_LEN}",
                        raw.len()
                    );
                }
                // SAFETY: both sides are plain old data and `header` is
                // COPY_UP_HEADER_LEN bytes; only the header is copied.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        raw.as_ptr(),
                        (&mut self.header as *mut CopyUpHeader).cast::<u8>(),
                        COPY_UP_HEADER_LEN,
                    );
                }
                let names = &raw[COPY_UP_HEADER_LEN..];
                let ev = &self.header;
                let used = ev.path_len as usize + ev.filename_len as usize;
                if used > names.len() {
                    bail!("record names {used} bytes but carries {}", names.len());
                }
                fill(&mut self.copy_up, &mut self.spare_filename, ev, names);
                Ok(Decoded::CopyUp(&mut self.copy_up))
            }
            record::OP_DONE => {
                let ev: OpDoneEvent = read(raw)?;
                Ok(Decoded::OpDone(OpDone {
                    trigger: Trigger::of_op(ev.op, ev.ia_valid, ev.flags),
                    start_ns: ev.start_ns,
                    duration_ns: ev.duration_ns,
                    pid: ev.pid,
                    tid: ev.tid,
                    copy_ups: ev.copy_ups,
                    ret: ev.ret,
                }))
            }
            record::CGROUP => {
                let ev: CgroupEvent = read(raw)?;
                let len = (ev.path_len as usize).min(ev.path.len());
                Ok(Decoded::Cgroup(CgroupMade {
                    id: ev.id,
                    path: String::from_utf8_lossy(&ev.path[..len]).into_owned(),
                }))
            }
            other => bail!("unknown record type {other}"),
        }
    }
}

/// `c` from header `ev` and `names`, the record's path bytes followed by its filename.
fn fill(c: &mut CopyUp, spare_filename: &mut Vec<u8>, ev: &CopyUpHeader, names: &[u8]) {
    let path_len = (ev.path_len as usize).min(names.len());
    let (path, rest) = names.split_at(path_len);
    c.start_ns = ev.start_ns;
    c.copy_ns = ev.copy_ns;
    c.data_ns = ev.data_ns;
    c.bytes = ev.bytes;
    c.cgroup_id = ev.cgroup_id;
    c.pid = ev.pid;
    c.tid = ev.tid;
    c.ppid = ev.ppid;
    c.ret = ev.ret;
    c.comm.clear();
    c.comm.extend_from_slice(cstr(&ev.comm));
    c.trigger = Trigger::classify(ev);
    c.kind = Kind::from_mode(ev.mode);
    join_path_into(path, ev.depth, &mut c.path);
    c.path_truncated = ev.flags & flags::PATH_TRUNCATED != 0;
    if ev.flags & flags::HAS_FILENAME != 0 {
        let f = c
            .filename
            .get_or_insert_with(|| std::mem::take(spare_filename));
        f.clear();
        f.extend_from_slice(cstr(&rest[..(ev.filename_len as usize).min(rest.len())]));
    } else if let Some(f) = c.filename.take() {
        *spare_filename = f;
    }
    c.waited = ev.flags & flags::WAITED != 0;
    c.return_missed = ev.flags & flags::RETURN_MISSED != 0;
    c.noop = ev.flags & flags::NOOP != 0;
    c.nest = ev.nest;
    c.metacopy = c.kind == Kind::File
        && ev.bytes == 0
        && ev.size > 0
        && ev.ret == 0
        && ev.flags & flags::WAITED == 0
        && ev.copy_flags & O_TRUNC == 0;
    c.size = ev.size;
    c.dev = ev.dev;
    c.cause_start_ns = if ev.syscall_start_ns != 0 {
        ev.syscall_start_ns
    } else {
        ev.op_start_ns
    };
    // Filled in again by whoever enriches this record.
    c.mount = None;
    c.cgroup = None;
    c.container = None;
    c.kstack_id = ev.kstack_id;
    c.ustack_id = ev.ustack_id;
    // The kernel numbers the upper layer 0 and the lower ones from 1, topmost first.
    c.layer = ev.layer.checked_sub(1);
    c.data_layer = ev.data_layer.checked_sub(1).filter(|&d| Some(d) != c.layer);
    c.overlay = None;
}

/// Decodes one record into owned values (one allocation per name); streams use `Decoder`.
pub fn decode(raw: &[u8]) -> Result<Record> {
    Ok(match Decoder::default().decode(raw)? {
        Decoded::CopyUp(c) => Record::CopyUp(std::mem::take(c)),
        Decoded::OpDone(d) => Record::OpDone(d),
        Decoded::Cgroup(m) => Record::Cgroup(m),
    })
}

/// A copy-up from a whole kernel-side record (its `names` in place).
pub fn from_event(ev: &CopyUpEvent) -> CopyUp {
    let mut c = CopyUp::default();
    let h = &ev.header;
    let used = (h.path_len as usize + h.filename_len as usize).min(ev.names.len());
    fill(&mut c, &mut Vec::new(), h, &ev.names[..used]);
    c
}

/// The bytes of `ev` as the kernel side sends them: the header and the used names.
pub fn wire_bytes(ev: &CopyUpEvent) -> &[u8] {
    let len = COPY_UP_HEADER_LEN + ev.header.path_len as usize + ev.header.filename_len as usize;
    // SAFETY: a #[repr(C)] plain-old-data record; `len` is within it for any record the
    // kernel side builds (path and filename stay inside `names`).
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const CopyUpEvent).cast(),
            len.min(size_of::<CopyUpEvent>()),
        )
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A zeroed raw event with the given path components (leaf first).
    pub fn raw_event(components: &[&[u8]]) -> CopyUpEvent {
        // SAFETY: plain old data, all-zero is valid.
        let mut ev: CopyUpEvent = unsafe { std::mem::zeroed() };
        let mut off = 0;
        for c in components {
            ev.names[off..off + c.len()].copy_from_slice(c);
            off += c.len() + 1;
        }
        ev.header.depth = components.len() as u32;
        ev.header.path_len = off as u32;
        ev
    }

    /// Puts `name` (NUL added) after the path, as the kernel side does.
    pub fn set_filename(ev: &mut CopyUpEvent, name: &[u8]) {
        let at = ev.header.path_len as usize;
        ev.names[at..at + name.len()].copy_from_slice(name);
        ev.names[at + name.len()] = 0;
        ev.header.filename_len = name.len() as u32 + 1;
        ev.header.flags |= flags::HAS_FILENAME;
    }

    #[test]
    fn path_is_rebuilt_root_first() {
        let ev = raw_event(&[b"file", b"c", b"b", b"a"]);
        assert_eq!(from_event(&ev).path, b"/a/b/c/file");
        assert_eq!(from_event(&raw_event(&[])).path, b"/");
    }

    /// The reused buffers carry nothing from one record into the next.
    #[test]
    fn decoder_reuse_leaves_no_trace_of_the_previous_record() {
        let mut long = raw_event(&[b"leaf-with-a-long-name", b"dir", b"top"]);
        long.header.record = record::COPY_UP;
        set_filename(&mut long, b"/a/long/name");
        long.header.comm[..9].copy_from_slice(b"long-comm");
        let mut short = raw_event(&[b"x"]);
        short.header.record = record::COPY_UP;
        short.header.comm[..2].copy_from_slice(b"sh");
        let mut d = Decoder::default();
        for _ in 0..2 {
            let Decoded::CopyUp(c) = d.decode(wire_bytes(&long)).expect("decodes") else {
                panic!("not a copy-up")
            };
            assert_eq!(c.path, b"/top/dir/leaf-with-a-long-name");
            assert_eq!(c.filename.as_deref(), Some(&b"/a/long/name"[..]));
            assert_eq!(c.comm, b"long-comm");
            c.mount = Some(Arc::from(&b"/merged"[..]));
            let Decoded::CopyUp(c) = d.decode(wire_bytes(&short)).expect("decodes") else {
                panic!("not a copy-up")
            };
            assert_eq!(c, &from_event(&short));
            assert_eq!((&c.path[..], &c.comm[..]), (&b"/x"[..], &b"sh"[..]));
            assert_eq!((c.filename.is_none(), c.mount.is_none()), (true, true));
        }
    }

    /// A cgroup record's bytes as the ring carries them, decoded.
    fn decode_cgroup(ev: &CgroupEvent) -> Result<CgroupMade> {
        // SAFETY: plain old data, read as bytes.
        let raw = unsafe {
            std::slice::from_raw_parts(
                (ev as *const CgroupEvent).cast::<u8>(),
                std::mem::size_of::<CgroupEvent>(),
            )
        };
        assert!(decode(&raw[..100]).is_err(), "a short record is refused");
        match decode(raw)? {
            Record::Cgroup(m) => Ok(m),
            _ => bail!("not a cgroup"),
        }
    }

    #[test]
    fn cgroup_records() {
        let mut ev = CgroupEvent {
            record: record::CGROUP,
            path_len: 8,
            id: 4242,
            path: [0; copyup_trace_common::CGROUP_PATH_LEN],
        };
        ev.path[..9].copy_from_slice(b"/a/b\xffc.x\0");
        assert_eq!(
            decode_cgroup(&ev).unwrap(),
            CgroupMade {
                id: 4242,
                path: "/a/b\u{fffd}c.x".into()
            }
        );
        // A length past the buffer is cut to it.
        ev.path_len = u32::MAX;
        ev.path = [b'a'; copyup_trace_common::CGROUP_PATH_LEN];
        let m = decode_cgroup(&ev).unwrap();
        assert_eq!(m.path.len(), copyup_trace_common::CGROUP_PATH_LEN);
    }

    #[test]
    fn decode_bytes_round_trip() {
        let mut ev = raw_event(&[b"big"]);
        ev.header.bytes = 8 << 20;
        ev.header.copy_ns = 1_500_000;
        ev.header.pid = 42;
        ev.header.tid = 43;
        ev.header.mode = 0o100644;
        ev.header.ret = -28;
        ev.header.flags = flags::IN_FCHOWNAT;
        ev.header.comm[..5].copy_from_slice(b"chown");
        set_filename(&mut ev, b"/m/big");
        ev.header.record = record::COPY_UP;
        let raw = wire_bytes(&ev);
        assert_eq!(
            raw.len(),
            COPY_UP_HEADER_LEN + 4 + 7,
            "header, \"big\\0\", \"/m/big\\0\""
        );
        let Record::CopyUp(c) = decode(raw).unwrap() else {
            panic!("not a copy-up")
        };
        assert_eq!(c.bytes, 8388608);
        assert_eq!((c.pid, c.tid, c.ret), (42, 43, -28));
        assert_eq!(c.comm, b"chown");
        assert_eq!(c.filename.as_deref(), Some(&b"/m/big"[..]));
        assert_eq!(c.kind, Kind::File);
        assert_eq!(c.trigger, Trigger::Chown);
        assert_eq!(c.path, b"/big");
        assert!(decode(&raw[..100]).is_err(), "shorter than the header");
        assert!(decode(&raw[..raw.len() - 1]).is_err(), "names cut short");
    }

    #[test]
    fn triggers() {
        use flags::*;
        let t = |f: u32, sys_flag: u32, op_code: u32, ia: u32, cf: u32| {
            let mut ev = raw_event(&[]);
            ev.header.flags = f;
            ev.header.syscall_flag = sys_flag;
            ev.header.op = op_code;
            ev.header.ia_valid = ia;
            ev.header.copy_flags = cf;
            Trigger::classify(&ev.header)
        };
        assert_eq!(t(IN_FCHOWNAT, 0, op::SETATTR, 6, 0), Trigger::Chown);
        assert_eq!(t(IN_FCHOWNAT, 0x100, op::SETATTR, 6, 0), Trigger::Lchown);
        // fchown: setattr with ATTR_UID|ATTR_GID|ATTR_CTIME, no do_fchownat.
        assert_eq!(t(0, 0, op::SETATTR, 2 | 4 | 64, 0), Trigger::Fchown);
        assert_eq!(t(0, 0, op::SETATTR, 1 | 64, 0), Trigger::Chmod);
        assert_eq!(t(0, 0, op::SETATTR, 8 | 32 | 64, 1), Trigger::Truncate);
        assert_eq!(t(0, 0, op::SETATTR, 16 | 32 | 64, 0), Trigger::Utimes);
        assert_eq!(t(0, 0, op::SETATTR, 64, 0), Trigger::Setattr);
        assert_eq!(t(0, 0, op::OPEN, 0, 0o1), Trigger::OpenWrite);
        assert_eq!(t(0, 0, op::OPEN, 0, 0o1001), Trigger::OpenTrunc);
        assert_eq!(t(0, 0, op::SETXATTR, 0, 0), Trigger::Setxattr);
        assert_eq!(t(0, 0, op::REMOVEXATTR, 0, 0), Trigger::Removexattr);
        assert_eq!(t(0, 0, op::CREATE, 0, 0), Trigger::Create);
        assert_eq!(t(0, 0, op::UNLINK, 0, 0), Trigger::Unlink);
        assert_eq!(t(0, 0, op::RENAME, 0, 0), Trigger::Rename);
        assert_eq!(t(0, 0, op::NONE, 0, 0), Trigger::Other);
        assert_eq!(Trigger::of_op(op::FCHOWNAT, 0, 0x100), Trigger::Lchown);
        assert_eq!(Trigger::of_op(op::FCHOWNAT, 0, 0), Trigger::Chown);
        assert_eq!(t(0, 0, 999, 0, 0), Trigger::Other);
        let names: std::collections::BTreeSet<_> = Trigger::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), Trigger::ALL.len(), "names are distinct");
    }

    #[test]
    fn metacopy_is_a_regular_file_copied_without_data() {
        let mut ev = raw_event(&[b"f"]);
        ev.header.mode = 0o100644;
        ev.header.size = 4096;
        assert!(from_event(&ev).metacopy);
        ev.header.bytes = 4096;
        assert!(!from_event(&ev).metacopy, "data copied");
        ev.header.bytes = 0;
        ev.header.copy_flags = 0o1001;
        assert!(
            !from_event(&ev).metacopy,
            "O_TRUNC copies no data by design"
        );
        ev.header.copy_flags = 0;
        ev.header.size = 0;
        assert!(!from_event(&ev).metacopy, "empty file");
        ev.header.size = 10;
        ev.header.mode = 0o040755;
        assert!(!from_event(&ev).metacopy, "directory");
    }

    #[test]
    fn op_done_records() {
        let ev = OpDoneEvent {
            record: record::OP_DONE,
            op: op::SETATTR,
            start_ns: 10,
            duration_ns: 500,
            pid: 1,
            tid: 2,
            copy_ups: 3,
            ret: 0,
            ia_valid: 1,
            flags: 0,
        };
        let raw: &[u8] = unsafe {
            std::slice::from_raw_parts((&ev as *const OpDoneEvent).cast(), size_of::<OpDoneEvent>())
        };
        let Record::OpDone(d) = decode(raw).unwrap() else {
            panic!("not an op record")
        };
        assert_eq!(
            (d.trigger, d.duration_ns, d.copy_ups),
            (Trigger::Chmod, 500, 3)
        );
        let mut bad = raw.to_vec();
        bad[0] = 77;
        assert!(decode(&bad)
            .unwrap_err()
            .to_string()
            .contains("unknown record type"));
    }

    #[test]
    fn kinds_from_mode() {
        assert_eq!(Kind::from_mode(0o100600), Kind::File);
        assert_eq!(Kind::from_mode(0o040755), Kind::Dir);
        assert_eq!(Kind::from_mode(0o120777), Kind::Symlink);
        assert_eq!(Kind::from_mode(0o020666), Kind::Other);
    }

    #[test]
    fn missed_return_is_flagged() {
        let mut ev = raw_event(&[b"x"]);
        assert!(!from_event(&ev).return_missed);
        ev.header.flags = flags::RETURN_MISSED;
        assert!(from_event(&ev).return_missed);
    }

    #[test]
    fn truncated_path_is_flagged() {
        let mut ev = raw_event(&[b"x"]);
        ev.header.flags = flags::PATH_TRUNCATED;
        assert!(from_event(&ev).path_truncated);
    }
}
