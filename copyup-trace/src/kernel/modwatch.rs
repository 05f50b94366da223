//! Notices the overlay module going away (or being replaced) while kprobes trace it: the
//! kernel drops a module's kprobes with the module, silently, whereas fentry/fexit links
//! pin it (`rmmod` then fails with EBUSY). This only reads `/proc/modules`; what to do
//! about it is the session's.

use std::fs;

const MODULES: &str = "/proc/modules";

/// The overlay module's load address in `/proc/modules` (or its presence, where
/// addresses are hidden), `None` when it is not a loaded module.
fn overlay_instance(modules: &str) -> Option<String> {
    modules.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&"overlay")).then(|| f.get(5).unwrap_or(&"").to_string())
    })
}

/// The overlay module as found at start-up, to compare with later.
pub struct OverlayWatch {
    at_start: String,
    reported: bool,
}

impl OverlayWatch {
    /// `None` when overlay is not a loaded module (built in): nothing can go away.
    pub fn new() -> Option<OverlayWatch> {
        let at_start = overlay_instance(&fs::read_to_string(MODULES).ok()?)?;
        Some(OverlayWatch {
            at_start,
            reported: false,
        })
    }

    /// Once, when the module is gone or another instance replaced it: what happened.
    pub fn check(&mut self) -> Option<&'static str> {
        if self.reported {
            return None;
        }
        let now = overlay_instance(&fs::read_to_string(MODULES).unwrap_or_default());
        let what = match now {
            None => {
                "the overlay module was unloaded: its kprobes went with it, so overlayfs \
                 copy-ups are no longer traced"
            }
            Some(addr) if addr != self.at_start => {
                "the overlay module was unloaded and loaded again: its kprobes went with \
                 the old one, so copy-ups of the new one are not traced (start copyup-trace \
                 again)"
            }
            Some(_) => return None,
        };
        self.reported = true;
        Some(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_overlay_instance() {
        let m = "ext4 1 0 - Live 0xffffffffc0100000\n\
                 overlay 212992 0 - Live 0xffffffffc0b3c000\n";
        assert_eq!(overlay_instance(m).as_deref(), Some("0xffffffffc0b3c000"));
        assert_eq!(overlay_instance("ext4 1 0 - Live 0x0\n"), None);
        assert_eq!(overlay_instance("overlay 1 0").as_deref(), Some(""));
    }
}
