#![no_std]
// The eBPF programs live in the `copyup-trace` binary target (src/main.rs). This
// empty library exists so that user space can name this crate as a build dependency.
