//! Kernel side of copyup-trace: the eBPF programs, one probe group a module.
//!
//! Per thread (keyed by tid) it remembers which syscall or overlayfs operation is in
//! progress (`chown`, `ops`) and a small `InFlight` record per `ovl_copy_up_one` call
//! (`copy_up`), adds the bytes and time of the data copy nested inside it (`data`), and
//! when the copy-up returns sends one record through the ring buffer. `fork` follows
//! `-- COMMAND`'s process tree; `exit` drops a thread's state when it ends. What
//! differs between kernels (struct offsets, argument positions) and the user's filters
//! arrive in one read-only `config::CONFIG`. Deciding those settings, and everything
//! done with the records, is user space's job.
#![no_std]
#![no_main]
// Map values are passed by reference, as the map API takes them.
#![allow(clippy::needless_borrows_for_generic_args)]

mod cgroup;
mod chown;
mod config;
mod copy_up;
mod data;
mod exit;
mod fork;
mod maps;
mod ops;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
