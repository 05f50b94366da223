//! Our eBPF programs as the kernel lists them: the probe table's names
//! (`copyup_trace_common::hooks::programs`) cut to `BPF_OBJ_NAME_LEN - 1` characters,
//! and our programs and links picked by id out of a `guest-ops bpf-objects` listing.
//! Which programs exist is the table's business; this only matches names against it.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use copyup_trace_common::{hooks, kabi::BPF_OBJ_NAME_LEN};

/// `name` as the kernel keeps it (program names are ASCII).
pub fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(BPF_OBJ_NAME_LEN - 1)]
}

/// The program of ours that the kernel lists as `listed`, by its full name.
pub fn ours(listed: &str) -> Option<&'static str> {
    hooks::programs().find(|p| kernel_name(p) == listed)
}

/// Our programs in one listing, and the links that attach them, by id.
#[derive(Debug, Default, PartialEq)]
pub struct Listed {
    pub progs: BTreeSet<u32>,
    pub links: BTreeSet<u32>,
}

impl Listed {
    pub fn is_empty(&self) -> bool {
        self.progs.is_empty() && self.links.is_empty()
    }
}

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} programs (ids {:?}) and {} links (ids {:?})",
            self.progs.len(),
            self.progs,
            self.links.len(),
            self.links
        )
    }
}

/// Picks ours out of `guest-ops bpf-objects` output (`prog ID NAME`, `link ID PROG_ID`):
/// programs by name, links by the program they attach.
pub fn listed(listing: &str) -> Result<Listed> {
    let mut out = Listed::default();
    let mut links = Vec::new();
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let id = |i: usize| -> Result<u32> {
            f.get(i)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("bad BPF listing line {line:?}"))
        };
        match f[0] {
            "prog" => {
                // A program loaded without a name lists none.
                if ours(f.get(2).copied().unwrap_or("")).is_some() {
                    out.progs.insert(id(1)?);
                }
            }
            "link" => links.push((id(1)?, id(2)?)),
            _ => bail!("bad BPF listing line {line:?}"),
        }
    }
    out.links = links
        .into_iter()
        .filter(|(_, prog)| out.progs.contains(prog))
        .map(|(link, _)| link)
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_are_counted_by_id() {
        let listing = "\
prog 3 hid_tail_call
prog 41 ovl_copy_up_one
prog 42 ovl_copy_up_one
prog 43 do_fchownat_ret
prog 44
link 1 3
link 7 41
link 8 42
";
        let l = listed(listing).unwrap();
        // Two programs of one name are two programs.
        assert_eq!(l.progs, BTreeSet::from([41, 42, 43]));
        // A kprobe attached without a link (before 5.15) has none to count.
        assert_eq!(l.links, BTreeSet::from([7, 8]));
        assert!(!l.is_empty());
        assert_eq!(
            l.to_string(),
            "3 programs (ids {41, 42, 43}) and 2 links (ids {7, 8})"
        );
        assert!(listed("prog 3 hid_tail_call\nlink 1 3\n")
            .unwrap()
            .is_empty());
        assert!(listed("").unwrap().is_empty());
        assert!(
            listed("ovl_copy_up_one\n").is_err(),
            "the old names-only format"
        );
        assert!(listed("prog x ovl_copy_up_one\n").is_err());
    }

    #[test]
    fn kernel_names_tell_our_programs_apart() {
        let names: Vec<&str> = hooks::programs().map(kernel_name).collect();
        let mut distinct = names.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(names.len(), distinct.len(), "{names:?}");
        assert_eq!(ours("sched_process_f"), Some("sched_process_fork"));
        assert_eq!(ours("do_fchownat_ret"), Some("do_fchownat_ret"));
        assert_eq!(ours("ovl_copy_up_one"), Some("ovl_copy_up_one"));
        assert_eq!(ours("sched_process"), None);
        assert_eq!(ours("kprobe_ovl_cop"), None);
    }
}
