//! copyup-trace: trace overlayfs copy-ups and attribute them to processes, syscalls and
//! containers. This file only lists the modules: the binary (`main.rs`) wires them
//! together; benchmarks use the decoding and aggregation directly.

pub mod advice;
pub mod aggregate;
pub mod cgroups;
pub mod check;
pub mod cli;
pub mod decode;
pub mod enrich;
pub mod escape;
pub mod hist;
pub mod kallsyms;
pub mod kernel;
pub mod layers;
pub mod metrics;
pub mod modwatch;
pub mod mounts;
pub mod options;
pub mod output;
pub mod plan;
pub mod preflight;
pub mod probes;
pub mod render;
pub mod runtimes;
pub mod session;
pub mod stacks;
pub mod timeline;
