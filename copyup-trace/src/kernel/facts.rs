//! Reads facts about the running kernel: release, which probe targets exist
//! (`/proc/kallsyms`), their prototypes and the struct layouts we need (BTF, including
//! the overlay module's split BTF). It gathers facts only: what to probe is `plan`'s
//! decision, and the kallsyms lines are parsed by `kallsyms`.

use std::{collections::BTreeMap, fs, io::BufRead, os::fd::FromRawFd, path::Path};

use anyhow::{anyhow, bail, Context, Result};
use btf_rs::{Backend, Btf, Type};

use copyup_trace_common::{
    arch,
    config::{entry_at, LowerStack, Offsets, Regs},
    hooks::{self, CHOWN_EXIT, COPY_UP_ONE},
    kver,
};

use crate::{
    kernel::kallsyms,
    kernel::plan::{BtfFunc, CtxStat, FuncFacts, KernelFacts, LayoutFrom},
};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
const OVERLAY_BTF: &str = "/sys/kernel/btf/overlay";
/// The name of overlay's kernel BTF object, when it is a module.
pub const OVERLAY_MODULE: &str = "overlay";

pub fn release() -> Result<String> {
    Ok(fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading /proc/sys/kernel/osrelease")?
        .trim()
        .to_string())
}

/// Gathers everything `plan::decide` needs.
pub fn facts() -> Result<KernelFacts> {
    let functions: Vec<&str> = hooks::FUNCS.iter().map(|h| h.func).collect();

    let t0 = std::time::Instant::now();
    let vmlinux = open_vmlinux_btf()?;
    // Overlay built as a module has its own split BTF on top of vmlinux's.
    let overlay = if Path::new(OVERLAY_BTF).exists() {
        Some(
            Btf::from_split_file(OVERLAY_BTF, &vmlinux)
                .map_err(|e| anyhow!("reading overlay BTF {OVERLAY_BTF}: {e}"))?,
        )
    } else {
        None
    };
    // The overlay's split BTF resolves vmlinux's ids too: one index serves both.
    let ovl_btf = overlay.as_ref().unwrap_or(&vmlinux);
    log::debug!("facts: BTF opened in {} us", t0.elapsed().as_micros());
    let t1 = std::time::Instant::now();
    let names: Vec<&str> = functions.iter().chain(STRUCTS).copied().collect();
    let index = Index::new(ovl_btf, &names)?;
    log::debug!(
        "facts: BTF names indexed in {} us",
        t1.elapsed().as_micros()
    );

    let funcs = func_facts(&index, &functions, overlay.is_some())?;
    let (offsets, ctx_stat) = offsets(&index)?;
    let release = release()?;
    let (lower_stack, lower_stack_from) = lower_stack(&index, &release);
    let regs = regs(&index);

    Ok(KernelFacts {
        regs,
        lower_stack,
        lower_stack_from,
        release,
        funcs,
        offsets,
        ctx_stat,
        chown_exit_ret_offset: chown_exit_ret_offset(),
        overlay_btf: overlay.is_some(),
    })
}

/// Which probe targets exist and can be attached to, with their BTF ids and parameter
/// names where BTF has them.
fn func_facts(
    index: &Index,
    functions: &[&'static str],
    overlay_btf: bool,
) -> Result<BTreeMap<String, FuncFacts>> {
    let t2 = std::time::Instant::now();
    let btf_ids: BTreeMap<&str, u32> = functions
        .iter()
        .filter_map(|&f| Some((f, func_id(index, f)?)))
        .collect();
    // The BTF encoder (pahole) describes every function that ftrace can attach to under
    // exactly that name, and only those. So where BTF describes overlay at all (module
    // BTF, or overlay built in), it settles which overlay functions exist, and kallsyms,
    // which the kernel formats on every read (160,000 lines, 0.35 s under emulation), is
    // read only for the rest: all of overlay's functions when its module has no BTF (as
    // on 5.10), or a vmlinux function missing from vmlinux BTF.
    let overlay_described = btf_ids.contains_key(COPY_UP_ONE.func);
    let missing: Vec<&str> = functions
        .iter()
        .copied()
        .filter(|f| !btf_ids.contains_key(f))
        .filter(|f| !(hooks::in_overlay_module(f) && overlay_described))
        .collect();
    let mut attachable: Vec<&str> = btf_ids.keys().copied().collect();
    if !missing.is_empty() {
        attachable.extend(
            attachable_symbols(kallsyms::open()?, &missing).context("reading /proc/kallsyms")?,
        );
    }
    log::debug!(
        "facts: probe targets found in {} us (kallsyms read for {} of {})",
        t2.elapsed().as_micros(),
        missing.len(),
        functions.len()
    );

    let mut funcs = BTreeMap::new();
    for &name in functions {
        let module = match (hooks::in_overlay_module(name), overlay_btf) {
            (true, true) => Some(OVERLAY_MODULE),
            _ => None,
        };
        funcs.insert(
            name.to_string(),
            FuncFacts {
                attachable: attachable.contains(&name),
                params: func_params(index, name),
                btf: btf_ids.get(name).map(|&id| BtfFunc {
                    id,
                    module: module.map(String::from),
                }),
            },
        );
    }

    Ok(funcs)
}

/// The struct offsets the kernel side reads, and where `ovl_copy_up_ctx` keeps the
/// file's size and mode where BTF describes it.
fn offsets(ix: &Index) -> Result<(Offsets, Option<CtxStat>)> {
    let ctx_stat = member_offset(ix, "ovl_copy_up_ctx", &["stat"]).ok();
    let offsets = Offsets {
        dentry_parent: member_offset(ix, "dentry", &["d_parent"])?,
        dentry_name: member_offset(ix, "dentry", &["d_name"])?
            + member_offset(ix, "qstr", &["name"])?,
        dentry_inode: member_offset(ix, "dentry", &["d_inode"])?,
        inode_mode: member_offset(ix, "inode", &["i_mode"])?,
        inode_size: member_offset(ix, "inode", &["i_size"])?,
        dentry_sb: member_offset(ix, "dentry", &["d_sb"])?,
        sb_dev: member_offset(ix, "super_block", &["s_dev"])?,
        task_real_parent: member_offset(ix, "task_struct", &["real_parent"])?,
        task_tgid: member_offset(ix, "task_struct", &["tgid"])?,
        iattr_valid: member_offset(ix, "iattr", &["ia_valid"])?,
        iattr_uid: member_offset(ix, "iattr", &["ia_uid"])?,
        iattr_gid: member_offset(ix, "iattr", &["ia_gid"])?,
        iattr_mode: member_offset(ix, "iattr", &["ia_mode"])?,
        inode_uid: member_offset(ix, "inode", &["i_uid"])?,
        inode_gid: member_offset(ix, "inode", &["i_gid"])?,
        cgroup_kn: member_offset(ix, "cgroup", &["kn"])?,
        kernfs_id: member_offset(ix, "kernfs_node", &["id"])?,
        cgroup_root: member_offset(ix, "cgroup", &["root"])?,
        root_hierarchy_id: member_offset(ix, "cgroup_root", &["hierarchy_id"])?,
    };
    let ctx_stat = ctx_stat.and_then(|s| {
        Some(CtxStat {
            size_off: s + member_offset(ix, "kstat", &["size"]).ok()?,
            mode_off: s + member_offset(ix, "kstat", &["mode"]).ok()?,
        })
    });

    Ok((offsets, ctx_stat))
}

/// `pt_regs` offsets of the syscall number and the user ip and sp, by this
/// architecture's names (`arch`); `CallId` is read where all three are found.
fn regs(ix: &Index) -> Option<Regs> {
    let names = arch::NATIVE.syscall_regs();
    Some(Regs {
        enabled: 0,
        nr: member_offset(ix, "pt_regs", &[names.nr]).ok()?,
        ip: member_offset(ix, "pt_regs", &[names.ip]).ok()?,
        sp: member_offset(ix, "pt_regs", &[names.sp]).ok()?,
    })
}

/// vmlinux BTF, mapped rather than parsed: parsing all of it takes ~40 MiB and, under
/// emulation, seconds, for the dozen types we look up. sysfs can be mapped since Linux
/// 6.16; before that the bytes are copied into an anonymous memory file and mapped from
/// there.
fn open_vmlinux_btf() -> Result<Btf> {
    match Btf::from_file_with_backend(VMLINUX_BTF, Backend::Mmap) {
        Ok(btf) => Ok(btf),
        Err(_) => mapped_copy(VMLINUX_BTF),
    }
}

/// `path`'s BTF copied into an anonymous memory file and mapped from there.
fn mapped_copy(path: &str) -> Result<Btf> {
    let mut src = fs::File::open(path).with_context(|| format!("opening {path}"))?;
    // SAFETY: a static NUL-terminated name and plain flags.
    let fd = unsafe { libc::memfd_create(c"copyup-trace-btf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        bail!(
            "memfd_create for kernel BTF: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let mut mem = unsafe { fs::File::from_raw_fd(fd) };
    std::io::copy(&mut src, &mut mem).with_context(|| format!("copying {path}"))?;
    // The mapping keeps the memory file alive after `mem` is closed.
    Btf::from_file_with_backend(format!("/proc/self/fd/{fd}"), Backend::Mmap)
        .map_err(|e| anyhow!("reading BTF {path}: {e}"))
}

/// Which of `wanted` appear in kallsyms under exactly that name (a `.isra`/`.constprop`
/// clone has a different calling convention and does not count).
fn attachable_symbols<'a>(lines: impl BufRead, wanted: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut found = Vec::new();
    kallsyms::for_each(lines, |sym| {
        if !sym.is_text() {
            return;
        }
        if let Some(w) = wanted.iter().find(|w| **w == sym.name) {
            if !found.contains(w) {
                found.push(*w);
            }
        }
    })?;
    Ok(found)
}

/// The structs whose layout `facts` reads.
const STRUCTS: &[&str] = &[
    "dentry",
    "qstr",
    "inode",
    "super_block",
    "task_struct",
    "iattr",
    "kstat",
    "ovl_copy_up_ctx",
    "ovl_entry",
    "ovl_path",
    "ovl_layer",
    "ovl_inode",
    "pt_regs",
    "cgroup",
    "cgroup_root",
    "kernfs_node",
];

/// The layout of `struct ovl_entry`, `ovl_path` and `ovl_layer` on the kernels from 5.7
/// to 6.4, whose overlay module may have no BTF (Debian's 5.10): `{ union { flags;
/// struct rcu_head rcu; }; unsigned numlower; struct ovl_path lowerstack[]; }` with
/// `ovl_path { layer; dentry; }` and `ovl_layer { mnt; trap; fs; int idx; int fsid; }`.
/// The dentry's offset of `d_fsdata` still comes from vmlinux BTF.
const ENTRY_BEFORE_6_5: LowerStack = LowerStack {
    entry_at: entry_at::DENTRY,
    entry_off: 0,
    numlower: 16,
    lowerstack: 24,
    path_size: 16,
    path_layer: 0,
    layer_idx: 24,
};

/// Where the kernel keeps a dentry's lower stack: from overlay's BTF where it has one,
/// else the known layout of the kernels before 6.5, else nowhere (layers unknown).
fn lower_stack(ix: &Index, release: &str) -> (LowerStack, LayoutFrom) {
    let from_btf = || -> Result<LowerStack> {
        let path_size = struct_size(ix, "ovl_path")?;
        let path_layer = member_offset(ix, "ovl_path", &["layer"])?;
        let layer_idx = member_offset(ix, "ovl_layer", &["idx"])?;
        // 6.5 moved the entry from the dentry into the inode and renamed its members.
        let in_inode = member_offset(ix, "ovl_inode", &["oe"]);
        let (entry_at, entry_off, numlower, lowerstack) = match in_inode {
            Ok(oe) => (
                entry_at::INODE,
                oe.wrapping_sub(member_offset(ix, "ovl_inode", &["vfs_inode"])?),
                member_offset(ix, "ovl_entry", &["__numlower"])?,
                member_offset(ix, "ovl_entry", &["__lowerstack"])?,
            ),
            Err(_) => (
                entry_at::DENTRY,
                member_offset(ix, "dentry", &["d_fsdata"])?,
                member_offset(ix, "ovl_entry", &["numlower"])?,
                member_offset(ix, "ovl_entry", &["lowerstack"])?,
            ),
        };
        Ok(LowerStack {
            entry_at,
            entry_off,
            numlower,
            lowerstack,
            path_size,
            path_layer,
            layer_idx,
        })
    };
    match from_btf() {
        Ok(l) => (l, LayoutFrom::Btf),
        Err(e) => match kver::parse(release) {
            Some(v) if (kver::LOWER_STACK_FIXED.0..kver::LOWER_STACK_FIXED.1).contains(&v) => (
                LowerStack {
                    entry_off: member_offset(ix, "dentry", &["d_fsdata"]).unwrap_or(0),
                    ..ENTRY_BEFORE_6_5
                },
                LayoutFrom::KnownLine,
            ),
            _ => {
                log::info!(
                    "overlay's lower stack layout is not known ({e:#}): layers are not named"
                );
                (LowerStack::default(), LayoutFrom::Unknown)
            }
        },
    }
}

/// The BTF ids of a set of names, found in one pass over the BTF (with a split BTF, over
/// it and its base): each lookup by name is a scan of every type name in the mmap
/// backend, 120,000 of them for a distribution's vmlinux.
struct Index<'a> {
    btf: &'a Btf,
    ids: BTreeMap<String, Vec<u32>>,
}

impl<'a> Index<'a> {
    fn new(btf: &'a Btf, names: &[&str]) -> Result<Self> {
        let alternation: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
        let re = regex::Regex::new(&format!("^(?:{})$", alternation.join("|")))
            .context("BTF name pattern")?;
        let mut ids: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for id in btf
            .resolve_ids_by_regex(&re)
            .map_err(|e| anyhow!("scanning BTF names: {e}"))?
        {
            let ty = btf
                .resolve_type_by_id(id)
                .map_err(|e| anyhow!("BTF type {id}: {e}"))?;
            if let Some(name) = ty.as_btf_type().and_then(|t| btf.resolve_name(t).ok()) {
                ids.entry(name).or_default().push(id);
            }
        }
        Ok(Index { btf, ids })
    }

    /// The types named `name` (it must be one of the indexed names).
    fn types(&self, name: &str) -> Vec<Type> {
        self.ids
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|&id| self.btf.resolve_type_by_id(id).ok())
            .collect()
    }
}

/// BTF type id of function `name` (the id fentry/fexit attach by); in split module BTF
/// the ids continue after the base's.
fn func_id(ix: &Index, name: &str) -> Option<u32> {
    ix.ids
        .get(name)?
        .iter()
        .copied()
        .find(|&id| matches!(ix.btf.resolve_type_by_id(id), Ok(Type::Func(_))))
}

/// Parameter names of function `name`, if BTF describes it.
fn func_params(ix: &Index, name: &str) -> Option<Vec<String>> {
    let btf = ix.btf;
    let func = ix.types(name).into_iter().find_map(|t| match t {
        Type::Func(f) => Some(f),
        _ => None,
    })?;
    let Type::FuncProto(proto) = btf.resolve_chained_type(&func).ok()? else {
        return None;
    };
    proto
        .parameters
        .iter()
        .map(|p| btf.resolve_name(p).ok())
        .collect()
}

/// `sizeof(struct strukt)`.
fn struct_size(ix: &Index, strukt: &str) -> Result<u32> {
    match ix
        .types(strukt)
        .into_iter()
        .find(|t| matches!(t, Type::Struct(_)))
    {
        Some(Type::Struct(s)) => Ok(s.size() as u32),
        _ => bail!("BTF has no struct {strukt}"),
    }
}

/// Byte offset of a (possibly nested, possibly inside anonymous unions) member.
fn member_offset(ix: &Index, strukt: &str, path: &[&str]) -> Result<u32> {
    let btf = ix.btf;
    let types = ix.types(strukt);
    let Some(Type::Struct(s)) = types.into_iter().find(|t| matches!(t, Type::Struct(_))) else {
        bail!("BTF has no struct {strukt}");
    };
    let mut bits = 0u32;
    let mut cur = s;
    for (i, field) in path.iter().enumerate() {
        let (off, ty) = find_member(btf, &cur, field)?
            .ok_or_else(|| anyhow!("BTF struct {strukt} has no member {}", path.join(".")))?;
        bits += off;
        if i + 1 < path.len() {
            cur = match strip(btf, ty)? {
                Type::Struct(s) | Type::Union(s) => s,
                _ => bail!("{strukt}.{field} is not a struct"),
            };
        }
    }
    if !bits.is_multiple_of(8) {
        bail!("{strukt}.{} is a bitfield", path.join("."));
    }
    Ok(bits / 8)
}

/// Finds `name` among the members of `s`, descending into anonymous structs/unions.
/// Returns its bit offset and type.
fn find_member(btf: &Btf, s: &btf_rs::Struct, name: &str) -> Result<Option<(u32, Type)>> {
    for m in &s.members {
        let mname = btf.resolve_name(m).unwrap_or_default();
        let ty = btf
            .resolve_chained_type(m)
            .map_err(|e| anyhow!("BTF member type: {e}"))?;
        if mname == name {
            return Ok(Some((m.bit_offset(), ty)));
        }
        if mname.is_empty() {
            if let Type::Struct(inner) | Type::Union(inner) = strip(btf, ty)? {
                if let Some((off, t)) = find_member(btf, &inner, name)? {
                    return Ok(Some((m.bit_offset() + off, t)));
                }
            }
        }
    }
    Ok(None)
}

/// Follows typedefs and qualifiers to the underlying type.
fn strip(btf: &Btf, mut ty: Type) -> Result<Type> {
    loop {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t),
            Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => btf.resolve_chained_type(t),
            Type::TypeTag(t) => btf.resolve_chained_type(t),
            _ => return Ok(ty),
        }
        .map_err(|e| anyhow!("BTF type chain: {e}"))?;
    }
}

/// Offset of field `field` in a tracepoint's record, from its tracefs format file.
/// `ret`'s offset in the chown-family syscall-exit records of this architecture's
/// syscalls, if all have one and agree (else the return is a kretprobe's or fexit's).
fn chown_exit_ret_offset() -> Option<u32> {
    let offsets: Vec<u32> = copyup_trace_common::arch::NATIVE
        .chown_exits()
        .iter()
        .map(|e| tracepoint_field_offset(CHOWN_EXIT.category, e, "ret").ok())
        .collect::<Option<_>>()?;
    offsets.windows(2).all(|w| w[0] == w[1]).then(|| offsets[0])
}

fn tracepoint_field_offset(category: &str, event: &str, field: &str) -> Result<u32> {
    for root in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let path = format!("{root}/events/{category}/{event}/format");
        if let Ok(text) = fs::read_to_string(&path) {
            return parse_format_offset(&text, field)
                .ok_or_else(|| anyhow!("{path} has no field {field}"));
        }
    }
    bail!(
        "the {category}:{event} tracepoint cannot be read: tracefs is not mounted \
         (mount -t tracefs tracefs /sys/kernel/tracing) or the kernel lacks it"
    )
}

fn parse_format_offset(text: &str, field: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.split_whitespace().last()?.trim_start_matches('*');
        if name != field {
            return None;
        }
        let off = rest.trim().strip_prefix("offset:")?.split(';').next()?;
        off.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_exact_names_only() {
        let text = "ffffffffc0a01000 t ovl_copy_up_one\t[overlay]\n\
                    ffffffffc0a02000 t ovl_copy_up_data.isra.0\t[overlay]\n\
                    ffffffff81000000 T do_fchownat\n\
                    ffffffff81000010 d ovl_setattr\n";
        let funcs: Vec<&str> = hooks::FUNCS.iter().map(|h| h.func).collect();
        let found = attachable_symbols(text.as_bytes(), &funcs).unwrap();
        assert_eq!(found, vec!["ovl_copy_up_one", "do_fchownat"]);
    }

    #[test]
    fn fork_format_offsets() {
        let text = "name: sched_process_fork\nID: 300\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
            \tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
            \tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\
            \tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_format_offset(text, "child_pid"), Some(44));
        assert_eq!(parse_format_offset(text, "parent_pid"), Some(24));
        assert_eq!(parse_format_offset(text, "nope"), None);
    }

    /// Machines of this project's kind have BTF: the layout reader must find the
    /// fields there.
    #[test]
    fn host_btf_offsets() {
        let btf = open_vmlinux_btf().unwrap();
        let ix = Index::new(&btf, STRUCTS).unwrap();
        let name = member_offset(&ix, "qstr", &["name"]).unwrap();
        assert_eq!(name, 8, "qstr.name follows the 8-byte hash_len union");
        assert_eq!(member_offset(&ix, "iattr", &["ia_valid"]).unwrap(), 0);
        assert!(member_offset(&ix, "dentry", &["d_parent"]).unwrap() > 0);
        assert!(member_offset(&ix, "dentry", &["no_such_field"]).is_err());
        // Not indexed, or not in this BTF at all: no answer rather than a wrong one.
        assert!(member_offset(&ix, "file", &["f_mode"]).is_err());
    }

    /// One pass over the names gives what a lookup per name gives.
    #[test]
    fn index_matches_lookups_by_name() {
        let btf = open_vmlinux_btf().unwrap();
        let names = ["do_fchownat", "dentry", "kstat", "no_such_name_here"];
        let ix = Index::new(&btf, &names).unwrap();
        for n in names {
            let mut want = btf.resolve_ids_by_name(n).unwrap();
            want.sort_unstable();
            let mut got = ix.ids.get(n).cloned().unwrap_or_default();
            got.sort_unstable();
            assert_eq!(got, want, "{n}");
        }
        assert!(ix.ids.get("do_fchownat").is_some_and(|v| !v.is_empty()));
    }

    /// Kernels before 6.16 cannot map sysfs BTF: the copy in a memory file must give the
    /// same answers.
    #[test]
    fn btf_from_a_memory_file_copy() {
        let direct_btf = open_vmlinux_btf().unwrap();
        let copy_btf = mapped_copy(VMLINUX_BTF).unwrap();
        let names = ["dentry", "inode", "task_struct", "do_fchownat"];
        let direct = Index::new(&direct_btf, &names).unwrap();
        let copy = Index::new(&copy_btf, &names).unwrap();
        for (s, m) in [
            ("dentry", "d_parent"),
            ("inode", "i_size"),
            ("task_struct", "tgid"),
        ] {
            assert_eq!(
                member_offset(&direct, s, &[m]).unwrap(),
                member_offset(&copy, s, &[m]).unwrap(),
                "{s}.{m}"
            );
        }
        assert!(func_id(&copy, "do_fchownat").is_some_and(|id| id > 0));
        assert_eq!(
            func_id(&copy, "do_fchownat"),
            func_id(&direct, "do_fchownat")
        );
        assert_eq!(
            func_params(&copy, "do_fchownat"),
            Some(
                ["dfd", "filename", "user", "group", "flag"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }
}
