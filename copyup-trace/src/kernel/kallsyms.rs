//! Reads /proc/kallsyms: one streamed pass over its `address type name [module]` lines.
//! It only parses; which symbols matter is up to the callers (`facts` looks for probe
//! targets, `stacks` names kernel frames).

use std::{
    fs,
    io::{self, BufRead, BufReader},
};

use anyhow::{Context, Result};

pub const PATH: &str = "/proc/kallsyms";

/// One line of kallsyms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// Zero for every symbol when kptr_restrict hides addresses from this reader.
    pub addr: u64,
    /// `t`/`T` text, `d`/`D` data, `w`/`W` weak and so on; lowercase is file-local.
    pub kind: char,
    pub name: &'a str,
    /// The module, without its brackets, for symbols outside vmlinux.
    pub module: Option<&'a str>,
}

impl Symbol<'_> {
    /// A function (not data, not a weak symbol).
    pub fn is_text(&self) -> bool {
        matches!(self.kind, 't' | 'T')
    }
}

/// /proc/kallsyms, buffered for streaming: the whole file is 10+ MiB on a distribution
/// kernel.
pub fn open() -> Result<impl BufRead> {
    let file = fs::File::open(PATH).with_context(|| format!("reading {PATH}"))?;
    Ok(BufReader::with_capacity(64 << 10, file))
}

/// Calls `each` with every line of `text`, one at a time, without keeping them. Lines
/// that are not `address type name [module]` are skipped.
pub fn for_each(mut text: impl BufRead, mut each: impl FnMut(Symbol<'_>)) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if text.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if let Some(sym) = parse_line(&line) {
            each(sym);
        }
    }
}

/// Whether `text` shows addresses: its first text symbol's is not 0. With
/// `kernel.kptr_restrict`, or `perf_event_paranoid` above 1 without CAP_SYSLOG, every
/// address reads as 0. Stops at that first symbol.
pub fn shows_addresses(mut text: impl BufRead) -> io::Result<bool> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if text.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        if let Some(s) = parse_line(&line).filter(|s| matches!(s.kind, 't' | 'T')) {
            return Ok(s.addr != 0);
        }
    }
}

fn parse_line(line: &[u8]) -> Option<Symbol<'_>> {
    let mut cols = std::str::from_utf8(line).ok()?.split_whitespace();
    let addr = u64::from_str_radix(cols.next()?, 16).ok()?;
    let mut kind = cols.next()?.chars();
    let (Some(kind), None) = (kind.next(), kind.next()) else {
        return None;
    };
    let name = cols.next()?;
    let module = cols
        .next()
        .map(|m| m.trim_start_matches('[').trim_end_matches(']'));
    Some(Symbol {
        addr,
        kind,
        name,
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_addresses_are_told() {
        let shown = b"0000000000000000 A fixed_percpu_data\nffffffff81000000 T _stext\n";
        assert!(shows_addresses(&shown[..]).unwrap());
        let hidden = b"0000000000000000 A fixed_percpu_data\n0000000000000000 T _stext\n";
        assert!(!shows_addresses(&hidden[..]).unwrap());
        assert!(!shows_addresses(&b""[..]).unwrap());
    }

    fn all(text: &[u8]) -> Vec<(u64, char, String, Option<String>)> {
        let mut out = Vec::new();
        for_each(text, |s| {
            out.push((
                s.addr,
                s.kind,
                s.name.to_string(),
                s.module.map(str::to_string),
            ))
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_with_and_without_module() {
        let got = all(b"ffffffff81000000 T _stext\n\
                       ffffffffc0a01000 t ovl_copy_up_one\t[overlay]\n\
                       0000000000000000 D jiffies");
        assert_eq!(
            got,
            vec![
                (0xffffffff81000000, 'T', "_stext".into(), None),
                (
                    0xffffffffc0a01000,
                    't',
                    "ovl_copy_up_one".into(),
                    Some("overlay".into())
                ),
                (0, 'D', "jiffies".into(), None),
            ]
        );
        assert!(Symbol {
            addr: 0,
            kind: 'T',
            name: "x",
            module: None
        }
        .is_text());
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let got = all(
            b"\nnot-hex T name\nffffffff81000000 T\nffffffff81000000 TT name\n\
                       \xff\n0000000000001000 t ok\n",
        );
        assert_eq!(got, vec![(0x1000, 't', "ok".into(), None)]);
    }
}
