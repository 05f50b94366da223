//! `--stacks` / `--flamegraph`: kernel and user stacks of each copy-up, folded
//! (`comm;user frames;kernel frames weight`, root first) and weighted by copy-up time,
//! the input format of flamegraph tools.
//!
//! Kernel frames are named from /proc/kallsyms. User frames are `module+0xoffset` from
//! the process's memory map, read when its first copy-up is seen (a process that has
//! already exited shows `[unknown]`); feed them to addr2line for source lines. This
//! module neither parses kallsyms lines (`kallsyms` does) nor reads the kernel's stack
//! map (the caller passes each stack's frames).

use std::{
    collections::HashMap,
    fs,
    io::{self, BufRead, Write},
    path::PathBuf,
};

use anyhow::{Context, Result};

use copyup_trace_common::hooks::COPY_UP_ONE;

use crate::output::sink::{End, Sink};
use crate::{escape::escape, events::decode::CopyUp, kernel::kallsyms};

/// Kernel text symbols, sorted by address.
pub struct KernelSymbols {
    syms: Vec<(u64, String)>,
}

impl KernelSymbols {
    pub fn load() -> Result<Self> {
        Self::read(kallsyms::open()?).context("reading /proc/kallsyms")
    }

    pub fn parse(text: &str) -> Self {
        Self::read(text.as_bytes()).expect("reading from memory cannot fail")
    }

    fn read(lines: impl BufRead) -> io::Result<Self> {
        let mut syms = Vec::new();
        kallsyms::for_each(lines, |s| {
            // Weak symbols can be functions that a stack passes through.
            if matches!(s.kind, 't' | 'T' | 'w' | 'W') && s.addr != 0 {
                syms.push((s.addr, s.name.to_string()));
            }
        })?;
        syms.sort_unstable();
        Ok(KernelSymbols { syms })
    }

    pub fn name(&self, ip: u64) -> &str {
        match self.syms.partition_point(|(a, _)| *a <= ip) {
            0 => "[unknown]",
            i => &self.syms[i - 1].1,
        }
    }
}

/// One executable mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    module: String,
}

/// Executable mappings from a `/proc/PID/maps` text.
fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (range, perms, off) = (it.next()?, it.next()?, it.next()?);
            if !perms.contains('x') {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            let path = it.nth(2).unwrap_or("[anon]");
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset: u64::from_str_radix(off, 16).ok()?,
                module: path.rsplit('/').next().unwrap_or(path).to_string(),
            })
        })
        .collect()
}

fn user_frame(maps: &[Mapping], ip: u64) -> String {
    match maps.iter().find(|m| (m.start..m.end).contains(&ip)) {
        Some(m) => format!(
            "{}+{:#x}",
            escape(m.module.as_bytes()),
            ip - m.start + m.offset
        ),
        None => "[unknown]".to_string(),
    }
}

/// What identifies one folded stack before symbolization.
#[derive(Hash, PartialEq, Eq)]
struct Key {
    pid: u32,
    comm: Vec<u8>,
    kstack: i32,
    ustack: i32,
}

/// Accumulates copy-up time per (process, kernel stack, user stack).
#[derive(Default)]
pub struct StackCollector {
    weights: HashMap<Key, u64>,
    maps: HashMap<u32, Vec<Mapping>>,
}

impl StackCollector {
    pub fn add(&mut self, c: &CopyUp) {
        let (kstack, ustack) = (c.kstack_id, c.ustack_id);
        if c.waited {
            return;
        }
        if ustack >= 0 {
            self.maps.entry(c.pid).or_insert_with(|| {
                fs::read_to_string(format!("/proc/{}/maps", c.pid))
                    .map(|t| parse_maps(&t))
                    .unwrap_or_default()
            });
        }
        let key = Key {
            pid: c.pid,
            comm: c.comm.clone(),
            kstack,
            ustack,
        };
        *self.weights.entry(key).or_default() += c.copy_ns;
    }

    /// Folded lines, sorted; `frames(id)` returns a stack's instruction pointers,
    /// innermost first (as the kernel stores them).
    pub fn fold(
        &self,
        ksyms: &KernelSymbols,
        frames: impl Fn(i32) -> Option<Vec<u64>>,
    ) -> Vec<String> {
        let mut folded: HashMap<String, u64> = HashMap::new();
        for (k, w) in &self.weights {
            let mut parts = vec![escape(&k.comm)];
            let user = if k.ustack >= 0 {
                frames(k.ustack)
            } else {
                None
            };
            match user {
                Some(ips) => {
                    let maps = self.maps.get(&k.pid).map(Vec::as_slice).unwrap_or(&[]);
                    parts.extend(ips.iter().rev().map(|ip| user_frame(maps, *ip)));
                }
                None => parts.push("[no user stack]".into()),
            }
            match if k.kstack >= 0 {
                frames(k.kstack)
            } else {
                None
            } {
                Some(ips) => {
                    parts.extend(kernel_frames(ips.iter().rev().map(|ip| ksyms.name(*ip))))
                }
                None => parts.push("[no kernel stack]".into()),
            }
            // Frame separators must not appear inside a frame.
            let line = parts
                .iter()
                .map(|p| p.replace(';', ":"))
                .collect::<Vec<_>>()
                .join(";");
            *folded.entry(line).or_default() += w;
        }
        let mut lines: Vec<String> = folded
            .into_iter()
            .map(|(s, w)| format!("{s} {w}"))
            .collect();
        lines.sort();
        lines
    }
}

/// Kernel frames, root first, as a kprobe would see them: fentry/fexit stacks also hold
/// the BPF trampolines and our own program, and a traced function appears twice around
/// its trampoline (its patched entry calls the trampoline, which calls its body). Some
/// kernels (7.3) leave out the frame of the function an fentry program runs at; the
/// stacks are recorded at `ovl_copy_up_one`'s entry, so it is put back there.
fn kernel_frames<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let at = COPY_UP_ONE.func;
    let mut out: Vec<String> = Vec::new();
    let mut after_trampoline = false;
    for name in names {
        if name.starts_with("bpf_trampoline_") || name.starts_with("bpf_prog_") {
            after_trampoline = true;
            continue;
        }
        if !(after_trampoline && out.last().is_some_and(|l| l == name)) {
            out.push(name.to_string());
        }
        after_trampoline = false;
    }
    if after_trampoline && out.last().is_some_and(|l| l != at) {
        out.push(at.to_string());
    }
    out
}

/// Where `--stacks` and `--flamegraph` write.
#[derive(Debug, Clone, Default)]
pub struct StackOutputs {
    pub folded: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

impl StackOutputs {
    pub fn wanted(&self) -> bool {
        self.folded.is_some() || self.svg.is_some()
    }

    pub fn write(&self, lines: &[String]) -> Result<()> {
        if let Some(p) = &self.folded {
            let mut f = fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            for l in lines {
                writeln!(f, "{l}")?;
            }
        }
        if let Some(p) = &self.svg {
            let f = fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut opts = inferno::flamegraph::Options::default();
            opts.title = "overlayfs copy-up time".to_string();
            opts.count_name = "ns".to_string();
            if lines.is_empty() {
                // inferno refuses empty input; an empty graph still says "nothing copied up".
                let empty = ["no-copy-ups 1"];
                inferno::flamegraph::from_lines(&mut opts, empty.iter().copied(), f)
            } else {
                inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), f)
            }
            .with_context(|| format!("writing flame graph {}", p.display()))?;
        }
        Ok(())
    }
}

/// `--stacks` / `--flamegraph`: copy-up time per stack, written to files at the end.
pub struct StackFiles {
    pub(super) collector: StackCollector,
    pub(super) to: StackOutputs,
}

impl Sink for StackFiles {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        self.collector.add(c);
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        let ksyms = KernelSymbols::load()?;
        let lines = self
            .collector
            .fold(&ksyms, |id| end.probes.stack_frames(id));
        self.to.write(&lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::aggregate::tests::cu;

    #[test]
    fn kernel_symbols_by_address() {
        let k = KernelSymbols::parse(
            "ffffffff81000000 T _stext\nffffffff81001000 t ovl_copy_up_one\t[overlay]\n\
             ffffffff81002000 T do_fchownat\nffffffff81003000 d some_data\n",
        );
        assert_eq!(k.name(0xffffffff81001010), "ovl_copy_up_one");
        assert_eq!(k.name(0xffffffff81002fff), "do_fchownat");
        assert_eq!(k.name(0xffffffff80000000), "[unknown]");
    }

    #[test]
    fn user_frames_from_maps() {
        let maps = parse_maps(
            "00400000-00452000 r-xp 00001000 08:01 123 /usr/bin/busybox\n\
             7f0000000000-7f0000100000 rw-p 00000000 00:00 0 [heap]\n",
        );
        assert_eq!(maps.len(), 1);
        assert_eq!(user_frame(&maps, 0x401234), "busybox+0x2234");
        assert_eq!(user_frame(&maps, 0x7f0000000010), "[unknown]");
    }

    #[test]
    fn fentry_trampolines_leave_no_trace() {
        let names = [
            "do_fchownat",
            "ovl_setattr",
            "bpf_trampoline_15032498596",
            "ovl_setattr",
            "ovl_copy_up_flags",
            "ovl_copy_up_one",
            "bpf_trampoline_15032498723",
            "bpf_prog_cbdb663ad2ebeafe_fe_copy_up_one",
        ];
        assert_eq!(
            kernel_frames(names.into_iter()),
            [
                "do_fchownat",
                "ovl_setattr",
                "ovl_copy_up_flags",
                "ovl_copy_up_one"
            ]
        );
        // A real recursion without a trampoline between stays.
        assert_eq!(kernel_frames(["f", "f"].into_iter()), ["f", "f"]);
        // 7.3 leaves out the traced function's own frame.
        assert_eq!(
            kernel_frames(
                [
                    "ovl_setattr",
                    "ovl_copy_up_flags",
                    "bpf_trampoline_1",
                    "bpf_prog_2_fe_copy_up_one"
                ]
                .into_iter()
            ),
            ["ovl_setattr", "ovl_copy_up_flags", "ovl_copy_up_one"]
        );
        // A kprobe stack is left as it is.
        assert_eq!(
            kernel_frames(["ovl_setattr", "ovl_copy_up_flags"].into_iter()),
            ["ovl_setattr", "ovl_copy_up_flags"]
        );
    }

    #[test]
    fn folded_lines_are_weighted_and_root_first() {
        let ksyms = KernelSymbols::parse(
            "0000000000001000 T entry_SYSCALL_64\n0000000000002000 T do_fchownat\n\
             0000000000003000 t ovl_copy_up_one\n",
        );
        let mut s = StackCollector::default();
        let mut a = cu(1, "/a", 10, 700);
        a.kstack_id = 5;
        let mut b = cu(1, "/b", 10, 300);
        b.kstack_id = 5;
        s.add(&a);
        s.add(&b);
        let mut waited = cu(1, "/c", 0, 99);
        waited.kstack_id = 5;
        waited.waited = true;
        s.add(&waited);
        let lines = s.fold(&ksyms, |id| (id == 5).then(|| vec![0x3001, 0x2001, 0x1001]));
        assert_eq!(
            lines,
            vec!["chown;[no user stack];entry_SYSCALL_64;do_fchownat;ovl_copy_up_one 1000"]
        );
    }

    #[test]
    fn flamegraph_svg_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let out = StackOutputs {
            folded: Some(dir.join("s.folded")),
            svg: Some(dir.join("s.svg")),
        };
        out.write(&["chown;do_fchownat;ovl_copy_up_one 42".to_string()])
            .unwrap();
        let svg = fs::read_to_string(dir.join("s.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("ovl_copy_up_one"));
        assert_eq!(
            fs::read_to_string(dir.join("s.folded")).unwrap(),
            "chown;do_fchownat;ovl_copy_up_one 42\n"
        );
    }
}
