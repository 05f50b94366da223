//! The CPU architectures copyup-trace is built for, and every fact that differs between
//! them, each named once: the Rust target and Debian architecture (the build, the guest
//! kernels), where `struct pt_regs` keeps a syscall's number and user registers, and the
//! release from which the kernel unwinds through a kretprobe's trampoline. The kernel
//! side's argument registers are the eBPF crate's (`config::arg`, by `bpf_target_arch`);
//! how a guest of each architecture is booted is xtask's.

use crate::kver::Version;

/// An architecture the tool is built and tested for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// Member names of `struct pt_regs` (BTF) that hold a syscall's number, the user
/// instruction pointer and the user stack pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallRegs {
    pub nr: &'static str,
    pub ip: &'static str,
    pub sp: &'static str,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// `uname -m`, and Rust's `target_arch`.
    pub const fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Debian's name: the `-amd64` / `-arm64` of kernel packages and releases.
    pub const fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The Rust target of the static binary.
    pub const fn musl_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// `struct pt_regs`' syscall number, user ip and user sp: x86-64's `orig_ax`, `ip`,
    /// `sp`; arm64's `syscallno` (an s32, followed in the same 8 bytes by a field that a
    /// syscall does not change), `pc`, `sp`.
    pub const fn syscall_regs(self) -> SyscallRegs {
        match self {
            Arch::X86_64 => SyscallRegs {
                nr: "orig_ax",
                ip: "ip",
                sp: "sp",
            },
            Arch::Aarch64 => SyscallRegs {
                nr: "syscallno",
                ip: "pc",
                sp: "sp",
            },
        }
    }

    /// The chown-family syscall-exit tracepoints this architecture has, of
    /// `hooks::CHOWN_EXIT.events`: every syscall that reaches `do_fchownat`. arm64's
    /// syscall table (the generic one) has fchownat only, no chown or lchown.
    pub fn chown_exits(self) -> &'static [&'static str] {
        let all = crate::hooks::CHOWN_EXIT.events;
        match self {
            Arch::X86_64 => all,
            Arch::Aarch64 => &all[all.len() - 1..],
        }
    }

    /// The release from which the stack unwinder recovers the return address a
    /// kretprobe replaced, so kernel stacks under return probes are whole: x86 in 5.15,
    /// arm64 in 5.16.
    pub const fn kretprobe_unwind(self) -> Version {
        match self {
            Arch::X86_64 => (5, 15),
            Arch::Aarch64 => (5, 16),
        }
    }

    /// The release from which BPF trampolines (fentry/fexit) attach to kernel
    /// functions: x86 had them before anything else the tool needs (`kver::FEXIT_RET`);
    /// arm64's JIT builds trampolines from 6.0, but they reach kernel functions only
    /// through ftrace direct calls, which arm64 has from 6.4 (before, attach fails
    /// with ENOTSUPP).
    pub const fn trampoline_attach(self) -> Version {
        match self {
            Arch::X86_64 => (5, 5),
            Arch::Aarch64 => (6, 4),
        }
    }

    /// By name: `x86_64`/`amd64` or `aarch64`/`arm64`.
    pub fn parse(name: &str) -> Option<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| name == a.name() || name == a.debian())
    }

    /// The architecture of a Debian kernel release (`6.1.0-41-amd64`,
    /// `7.3.4+deb13-arm64`), by its flavour's suffix.
    pub fn of_release(release: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| {
            release
                .strip_suffix(a.debian())
                .is_some_and(|r| r.ends_with('-'))
        })
    }
}

/// The architecture this crate is compiled for (user space; the eBPF object is built
/// for the same one).
#[cfg(target_arch = "x86_64")]
pub const NATIVE: Arch = Arch::X86_64;
#[cfg(target_arch = "aarch64")]
pub const NATIVE: Arch = Arch::Aarch64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_releases() {
        assert_eq!(Arch::parse("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::parse("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("riscv64"), None);
        assert_eq!(Arch::of_release("6.1.0-41-amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::of_release("7.3.4+deb13-arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::of_release("6.12.0"), None);
        assert_eq!(Arch::of_release("6.12.0-xarm64"), None);
    }

    #[test]
    fn chown_exits_per_architecture() {
        assert_eq!(
            Arch::X86_64.chown_exits(),
            ["sys_exit_chown", "sys_exit_lchown", "sys_exit_fchownat"]
        );
        assert_eq!(Arch::Aarch64.chown_exits(), ["sys_exit_fchownat"]);
    }
}
