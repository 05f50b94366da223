//! `guest-ops fexit-probe`: whether this kernel lets a tracing program attach as fexit to
//! overlayfs's `ovl_copy_up_one` and call `bpf_get_func_ret` and `bpf_get_func_arg`, as
//! copyup-trace's fexit programs do. It finds the function's BTF id (split module BTF,
//! parsed here), loads a hand-written program through raw bpf(2), attaches it and detaches
//! it at once, and prints `ok` or `no: <step>: <why>`. It uses none of the tool's code or
//! aya, so the host learns what the kernel offers independently of the tool's own rule;
//! what the tool should then do is the host's to judge.

use std::{
    ffi::CStr,
    fs,
    io::Error,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const TARGET: &str = "ovl_copy_up_one";
const MODULE: &str = "overlay";

// bpf(2) commands, program and attach types, helpers (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const BPF_BTF_GET_NEXT_ID: libc::c_long = 23;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FEXIT: u32 = 25;
const BPF_FUNC_GET_FUNC_ARG: i32 = 183;
const BPF_FUNC_GET_FUNC_RET: i32 = 184;

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_KIND_FUNC: u32 = 12;

/// One BPF instruction: opcode, registers (dst in the low nibble), offset, immediate.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64
        | ((dst | src << 4) as u64) << 8
        | (off as u16 as u64) << 16
        | (imm as u32 as u64) << 32
}

/// The program: read the return value and the first argument onto the stack, then
/// return 0 (fexit must). Kernels before 5.17 refuse both helpers.
const PROGRAM: [u64; 13] = [
    insn(0xbf, 6, 1, 0, 0),                     // r6 = r1 (the context)
    insn(0x7a, 10, 0, -8, 0),                   // *(u64 *)(r10 - 8) = 0
    insn(0x7a, 10, 0, -16, 0),                  // *(u64 *)(r10 - 16) = 0
    insn(0xbf, 2, 10, 0, 0),                    // r2 = r10
    insn(0x07, 2, 0, 0, -8),                    // r2 += -8
    insn(0x85, 0, 0, 0, BPF_FUNC_GET_FUNC_RET), // bpf_get_func_ret(ctx, r10 - 8)
    insn(0xbf, 1, 6, 0, 0),                     // r1 = r6
    insn(0xb7, 2, 0, 0, 0),                     // r2 = 0
    insn(0xbf, 3, 10, 0, 0),                    // r3 = r10
    insn(0x07, 3, 0, 0, -16),                   // r3 += -16
    insn(0x85, 0, 0, 0, BPF_FUNC_GET_FUNC_ARG), // bpf_get_func_arg(ctx, 0, r10 - 16)
    insn(0xb7, 0, 0, 0, 0),                     // r0 = 0
    insn(0x95, 0, 0, 0, 0),                     // exit
];

/// `union bpf_attr` for BPF_PROG_LOAD up to `attach_btf_obj_fd`, every byte a field so
/// that none is left uninitialised (the kernel refuses unknown non-zero bytes).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    core_relo_cnt: u32,
}
const _: () = assert!(size_of::<ProgLoadAttr>() == 120);

/// `struct bpf_btf_info` (its name fields since 5.11, as module BTF).
#[repr(C)]
#[derive(Default)]
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Error> {
    // SAFETY: attr is a fully initialised bpf_attr variant of the size passed.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if rc < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> Result<OwnedFd, Error> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The kernel BTF object named `name` (a module's), by walking every BTF id.
fn btf_object(name: &str) -> Result<Option<OwnedFd>, Error> {
    let mut id = 0u32;
    loop {
        let mut next = [id, 0, 0]; // start_id, next_id, open_flags
        match bpf(BPF_BTF_GET_NEXT_ID, &mut next) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            r => r?,
        };
        id = next[1];
        let mut by_id = [id, 0, 0]; // btf_id, next_id, open_flags
        let fd = match bpf_fd(BPF_BTF_GET_FD_BY_ID, &mut by_id) {
            // Gone since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            r => r?,
        };
        let mut buf = [0u8; 64];
        let mut info = BtfInfo {
            name: buf.as_mut_ptr() as u64,
            name_len: buf.len() as u32,
            ..BtfInfo::default()
        };
        // bpf_fd, info_len, info
        let mut get = (
            fd.as_raw_fd() as u32,
            size_of::<BtfInfo>() as u32,
            &mut info as *mut BtfInfo as u64,
        );
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut get)?;
        let found = CStr::from_bytes_until_nul(&buf).map(|c| c.to_bytes()) == Ok(name.as_bytes());
        if info.kernel_btf != 0 && found {
            return Ok(Some(fd));
        }
    }
}

/// A BTF blob's types (kind and name offset, in id order from its first id) and strings:
/// enough to find a function by name.
pub struct Btf<'a> {
    types: Vec<(u32, u32)>,
    strings: &'a [u8],
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("BTF truncated at byte {at}"))
}

/// Parses the header and walks the type records, sizing each by its kind.
pub fn parse_btf(data: &[u8]) -> Result<Btf<'_>, String> {
    if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
        return Err("not little-endian BTF".into());
    }
    let (hdr_len, type_off, type_len) = (u32_at(data, 4)?, u32_at(data, 8)?, u32_at(data, 12)?);
    let (str_off, str_len) = (u32_at(data, 16)?, u32_at(data, 20)?);
    let start = (hdr_len + type_off) as usize;
    let end = start + type_len as usize;
    let s = (hdr_len + str_off) as usize;
    let strings = data
        .get(s..s + str_len as usize)
        .ok_or("BTF strings out of bounds")?;
    let mut types = Vec::new();
    let mut at = start;
    while at < end {
        let (name_off, info) = (u32_at(data, at)?, u32_at(data, at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        // Bytes after the 12-byte common part (struct btf_type), per kind.
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
            k => return Err(format!("unknown BTF kind {k} at byte {at}")),
        };
        types.push((kind, name_off));
        at += 12 + extra;
        if at > end {
            return Err("a BTF type runs past the type section".into());
        }
    }
    Ok(Btf { types, strings })
}

/// The id of function `name` in `split` (module BTF over `base`, whose ids and string
/// offsets continue after the base's), or in `base` when there is no split BTF.
pub fn func_id(base: &Btf, split: Option<&Btf>, name: &str) -> Option<u32> {
    let string = |off: u32| -> &[u8] {
        let (s, off) = match split {
            Some(sp) if off as usize >= base.strings.len() => {
                (sp.strings, off as usize - base.strings.len())
            }
            _ => (base.strings, off as usize),
        };
        let s = s.get(off..).unwrap_or_default();
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    };
    let (btf, first) = match split {
        Some(sp) => (sp, base.types.len() as u32 + 1),
        None => (base, 1),
    };
    let at = btf
        .types
        .iter()
        .position(|&(kind, off)| kind == BTF_KIND_FUNC && string(off) == name.as_bytes())?;
    Some(first + at as u32)
}

/// Runs the probe and returns its one-line verdict; an error only where the probe itself
/// could not run (the BTF unreadable).
pub fn run() -> Result<String, String> {
    let read = |p: &str| fs::read(p).map_err(|e| format!("{p}: {e}"));
    let vmlinux = match read("/sys/kernel/btf/vmlinux") {
        Ok(v) => v,
        Err(e) => return Ok(format!("no: btf: {e}")),
    };
    let base = parse_btf(&vmlinux).map_err(|e| format!("vmlinux: {e}"))?;
    let module_path = format!("/sys/kernel/btf/{MODULE}");
    // Overlay built in has its functions in vmlinux; as a module, in its own split BTF
    // (none before 5.11, or without CONFIG_DEBUG_INFO_BTF_MODULES).
    let module = fs::metadata(&module_path)
        .is_ok()
        .then(|| read(&module_path))
        .transpose()?;
    let split = module
        .as_deref()
        .map(parse_btf)
        .transpose()
        .map_err(|e| format!("{module_path}: {e}"))?;
    let Some(btf_id) = func_id(&base, split.as_ref(), TARGET) else {
        return Ok(format!(
            "no: btf: no {TARGET} in {}",
            if split.is_some() {
                &module_path
            } else {
                "vmlinux BTF (and no module BTF)"
            }
        ));
    };
    let obj = if split.is_some() {
        match btf_object(MODULE) {
            Ok(Some(fd)) => Some(fd),
            Ok(None) => return Ok(format!("no: btf: no kernel BTF object named {MODULE}")),
            Err(e) => return Ok(format!("no: btf object: {e}")),
        }
    } else {
        None
    };
    let prog = match load(btf_id, obj.as_ref()) {
        Ok(fd) => fd,
        Err(e) => return Ok(format!("no: load: {e}")),
    };
    // name 0: a tracing program attaches to the function it was loaded for.
    let mut open = (0u64, prog.as_raw_fd() as u32, 0u32);
    match bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut open) {
        // Closing the link detaches it.
        Ok(link) => drop(link),
        Err(e) => return Ok(format!("no: attach: {e}")),
    }
    Ok("ok".into())
}

/// Loads the program as fexit of type `btf_id` (in module BTF object `obj`, else
/// vmlinux); a refusal is retried with the verifier log, whose last line says why.
fn load(btf_id: u32, obj: Option<&OwnedFd>) -> Result<OwnedFd, String> {
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"fexit_probe");
    let mut log = vec![0u8; 1 << 16];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: PROGRAM.len() as u32,
        insns: PROGRAM.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_TRACE_FEXIT,
        attach_btf_id: btf_id,
        attach_btf_obj_fd: obj.map_or(0, |fd| fd.as_raw_fd() as u32),
        ..ProgLoadAttr::default()
    };
    let err = match bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let _ = bpf_fd(BPF_PROG_LOAD, &mut attr);
    let text = String::from_utf8_lossy(&log);
    let why = text
        .trim_end_matches('\0')
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.starts_with("processed "))
        .unwrap_or("")
        .trim()
        .to_string();
    Err(if why.is_empty() {
        err.to_string()
    } else {
        format!("{err}: {why}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: header, `types` (already encoded), `strings`.
    fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]); // version, flags
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(types);
        b.extend_from_slice(strings);
        b
    }

    fn ty(name_off: u32, kind: u32, vlen: u32, extra: usize) -> Vec<u8> {
        let mut t = Vec::new();
        for v in [name_off, kind << 24 | vlen, 0] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        t.resize(12 + extra, 0);
        t
    }

    #[test]
    fn split_btf_ids_and_strings_continue_after_the_base() {
        // Base: [1] INT "int", [2] STRUCT "s" with 2 members, [3] FUNC "do_x".
        let base_strings = b"\0int\0s\0do_x\0";
        let base_types = [ty(1, 1, 0, 4), ty(5, 4, 2, 24), ty(7, 12, 0, 0)].concat();
        let base_blob = blob(&base_types, base_strings);
        let base = parse_btf(&base_blob).unwrap();
        assert_eq!(func_id(&base, None, "do_x"), Some(3));
        assert_eq!(func_id(&base, None, "int"), None, "not a FUNC");
        // Split: [4] FUNC_PROTO with 3 params, [5] FUNC "ovl_copy_up_one" (own strings,
        // offset 1 after the base's 12 bytes), [6] FUNC named by a base string.
        let split_strings = b"\0ovl_copy_up_one\0";
        let n = base_strings.len() as u32;
        let split_types = [ty(0, 13, 3, 24), ty(n + 1, 12, 0, 0), ty(7, 12, 0, 0)].concat();
        let split_blob = blob(&split_types, split_strings);
        let split = parse_btf(&split_blob).unwrap();
        assert_eq!(func_id(&base, Some(&split), TARGET), Some(5));
        assert_eq!(func_id(&base, Some(&split), "do_x"), Some(6));
        assert_eq!(func_id(&base, Some(&split), "missing"), None);
    }

    #[test]
    fn bad_btf_is_refused() {
        assert!(parse_btf(b"\x9f\xeb").is_err());
        assert!(
            parse_btf(&blob(&ty(0, 31, 0, 0), b"\0")).is_err(),
            "unknown kind"
        );
        // A struct whose 5 members are missing.
        assert!(parse_btf(&blob(&ty(0, 4, 5, 0), b"\0")).is_err());
        let mut truncated = blob(&ty(0, 12, 0, 0), b"\0");
        truncated.truncate(36);
        assert!(parse_btf(&truncated).is_err(), "strings cut off");
        assert!(parse_btf(&blob(&ty(0, 12, 0, 0), b"\0")).is_ok());
    }

    #[test]
    fn instructions_are_encoded_as_the_kernel_reads_them() {
        // r2 += -8: BPF_ALU64 | BPF_ADD | BPF_K, dst 2, imm -8.
        assert_eq!(
            insn(0x07, 2, 0, 0, -8).to_le_bytes(),
            [0x07, 0x02, 0, 0, 0xf8, 0xff, 0xff, 0xff]
        );
        // *(u64 *)(r10 - 16) = 0: off -16.
        assert_eq!(
            insn(0x7a, 10, 0, -16, 0).to_le_bytes(),
            [0x7a, 0x0a, 0xf0, 0xff, 0, 0, 0, 0]
        );
        // r1 = r6: src in the high nibble.
        assert_eq!(insn(0xbf, 1, 6, 0, 0).to_le_bytes()[1], 0x61);
        assert_eq!(PROGRAM[5] >> 32, 184);
        assert_eq!(PROGRAM[10] >> 32, 183);
    }
}
