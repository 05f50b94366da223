//! copyup-trace: trace overlayfs copy-ups and attribute them to processes, syscalls and
//! containers. This file only lists the modules, in the order a record goes through
//! them: the kernel side is loaded and read (`kernel`), its records decoded and
//! completed (`events`, from `attribution`), then totalled and written (`output`). The
//! binary (`main.rs`) wires them together through `cli`, `options` and `session` (or
//! `check`); benchmarks use the decoding and aggregation directly.

pub mod attribution;
pub mod check;
pub mod cli;
pub mod escape;
pub mod events;
pub mod hashing;
pub mod kernel;
pub mod options;
pub mod output;
pub mod session;
