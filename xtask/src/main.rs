mod guest;
mod kernels;
mod setup;

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        // Hidden: checks the qemu guest harness end to end.
        Some("guest-selftest") => guest::selftest(),
        _ => anyhow::bail!("usage: cargo xtask guest-selftest"),
    }
}
