//! The advice section after the tables, as text, from `advice`.

use std::io::Write;

use anyhow::Result;

use crate::output::{aggregate::mounts::MountTotals, render::human_bytes};

fn yes_no(b: bool, on: &str) -> String {
    format!("{on}={}", if b { "on" } else { "off" })
}

/// The advice section, after the tables; nothing when no copy-up had a known overlay.
pub fn write_text(out: &mut impl Write, mounts: &MountTotals) -> Result<()> {
    for row in mounts.rows() {
        let a = row.advice();
        let o = &a.options;
        writeln!(
            out,
            "\nOverlay {}: {}, redirect_dir={}, {}, {}, {}",
            a.mount,
            yes_no(o.metacopy, "metacopy"),
            o.redirect_dir,
            yes_no(o.index, "index"),
            yes_no(o.userxattr, "userxattr"),
            yes_no(o.volatile, "volatile"),
        )?;
        writeln!(
            out,
            "  {} copy-ups, {} copied ({} bytes)",
            a.copy_ups,
            human_bytes(a.bytes),
            a.bytes
        )?;
        if a.metadata_only_bytes > 0 {
            let triggers: Vec<String> = a
                .metadata_only_bytes_by_trigger
                .iter()
                .map(|(t, b)| format!("{t} {b}"))
                .collect();
            writeln!(
                out,
                "  metadata-only operations copied {} ({} bytes) of file data in {} copy-ups ({})",
                human_bytes(a.metadata_only_bytes),
                a.metadata_only_bytes,
                a.metadata_only_copy_ups,
                triggers.join(", "),
            )?;
            match &a.metacopy_blocked_by {
                None => writeln!(
                    out,
                    "  advice: {} to copy only their metadata: {} bytes less, unless a file's \
                     data is written later; use it only with trusted lower and upper \
                     directories",
                    a.metacopy_how, a.metacopy_would_avoid
                )?,
                Some(why) => writeln!(out, "  metacopy=on cannot help: {why}")?,
            }
        } else if a.metacopies > 0 {
            writeln!(
                out,
                "  metacopy=on at work: {} copy-ups copied metadata only",
                a.metacopies
            )?;
        }
        if a.noop_copy_ups > 0 {
            writeln!(
                out,
                "  {} copy-ups copied {} ({} bytes) to set an owner or mode the file already \
                 had: change only what differs (find DIR ! -user U -exec chown U:G {{}} +, \
                 or ! -perm M for chmod), or set it when the image is built (COPY --chown, \
                 or a chown in the same build step)",
                a.noop_copy_ups,
                human_bytes(a.noop_bytes),
                a.noop_bytes
            )?;
        }
        if a.chown_r_shaped {
            writeln!(
                out,
                "  {} of the {} copy-ups came from chown: for a chown -R over a container's \
                 tree, {}",
                a.chown_copy_ups, a.copy_ups, a.chown_how
            )?;
        }
    }
    Ok(())
}
