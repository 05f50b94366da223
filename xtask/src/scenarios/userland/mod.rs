//! Host-side half of the test families that run in the Debian userland guest
//! (`userland`, `guest::Image::Userland`): the guest script assembled from its parts
//! (`guest/userland/lib.sh`, then `guest/userland/NAME.sh` per family) and the checks, one
//! module per family. Parsing artifacts is the parent module's (`Artifacts`).
//!
//! A new family: write `guest/userland/NAME.sh` (it saves artifacts with `emit`), a
//! module `NAME.rs` here with its `CHECKS`, and add NAME to `families!` below. `deb` is
//! the exception: it needs systemd as PID 1, so it boots on its own (`deb::SCRIPT`).

use super::Check;

pub mod deb;
mod image;
mod imglayers;
mod runtimes;

/// Ties each family's checks (`NAME.rs`, its `CHECKS`) to its guest part
/// (`guest/userland/NAME.sh`).
macro_rules! families {
    ($($family:ident),* $(,)?) => {
        /// The script the userland guest runs in one boot: the helpers, then every
        /// family's scenarios in the order given.
        pub const SCRIPT: &str = concat!(
            include_str!("../../../guest/userland/lib.sh"),
            $(include_str!(concat!("../../../guest/userland/", stringify!($family), ".sh")),)*
            "exit 0\n",
        );

        const FAMILIES: &[&[Check]] = &[$($family::CHECKS),*];
    };
}

families!(runtimes, imglayers, image);

/// The kernel lines the userland families run on: the newest long-term line and the
/// newest line (each boot adds a few minutes to `cargo xtask test`).
pub const SERIES: &[&str] = &["6.12", "7.3"];

/// Every check, family by family.
pub fn checks() -> impl Iterator<Item = &'static Check> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_script_every_check_named_once() {
        assert!(SCRIPT.starts_with("# Guest-side half of the userland"));
        assert!(SCRIPT.ends_with("\nexit 0\n"));
        let mut names: Vec<&str> = checks().map(|c| c.0).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a check name is used twice");
    }
}
