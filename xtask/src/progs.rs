//! Our eBPF programs as the kernel lists them: the probe table's names
//! (`copyup_trace_common::hooks::programs`) cut to `BPF_OBJ_NAME_LEN - 1` characters.
//! Which programs exist is the table's business; this only matches names against it.

use copyup_trace_common::{hooks, kabi::BPF_OBJ_NAME_LEN};

/// `name` as the kernel keeps it (program names are ASCII).
pub fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(BPF_OBJ_NAME_LEN - 1)]
}

/// The program of ours that the kernel lists as `listed`, by its full name.
pub fn ours(listed: &str) -> Option<&'static str> {
    hooks::programs().find(|p| kernel_name(p) == listed)
}

#[cfg(test)]
mod tests {
    use super::*;

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
