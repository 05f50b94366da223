//! Advice after the tables: per overlay mount that copied up, its options and the bytes
//! that metadata-only operations copied, which `metacopy=on` would have left in the lower
//! layer, or why it cannot apply; and, for a `chown -R`-shaped workload, idmapped mounts.
//! It ends at the advice as data: the mount totals are `aggregate::mounts`', the text
//! `render::advice`'s.

use serde::Serialize;

use crate::{
    attribution::layers::{OverlayInfo, OverlayOptions},
    escape::escape,
    output::aggregate::mounts::MountRow,
};

/// A workload is `chown -R`-shaped when at least this many copy-ups of one mount, and at
/// least half of them, come from chown: then idmapped mounts are the better answer.
const CHOWN_R_MIN: u64 = 16;

/// The store that set up an overlay (`RuntimeLayer::store`: `docker`,
/// `containers-storage`, `containerd`), from its layers' directories.
pub fn store_of(info: &OverlayInfo) -> Option<&'static str> {
    info.lowers
        .iter()
        .find_map(|l| l.runtime.as_ref().map(|r| r.store))
}

/// How to have the mounts of `store` made with `metacopy=on`: each runtime's own
/// setting, or why it has none.
pub fn metacopy_how(store: Option<&str>) -> &'static str {
    match store {
        Some("containers-storage") => {
            "set mountopt = \"metacopy=on\" under [storage.options.overlay] in \
             /etc/containers/storage.conf (podman, CRI-O, buildah)"
        }
        Some("containerd") => {
            "set mount_options = [\"metacopy=on\"] for containerd's overlayfs snapshotter \
             ([plugins.\"io.containerd.snapshotter.v1.overlayfs\"] in \
             /etc/containerd/config.toml)"
        }
        Some("docker") => {
            "turn on the overlay module's default (options overlay metacopy=Y in \
             /etc/modprobe.d: for every overlay on the host), since docker's overlay2 driver \
             takes no mount options (overlay2.size only), or move docker to its containerd \
             image store and set containerd's overlayfs snapshotter mount_options = \
             [\"metacopy=on\"]"
        }
        _ => "mount with metacopy=on (and redirect_dir=on)",
    }
}

/// What avoids a `chown -R` of a container's tree on the mounts of `store`: ids given by
/// the runtime instead, and where that still chowns.
pub fn chown_how(store: Option<&str>) -> &'static str {
    match store {
        Some("containers-storage") => {
            "podman --userns=auto (or keep-id) maps the ids with an idmapped mount where the \
             kernel can idmap the layers' filesystem (copyup-trace check says), else it \
             makes a chowned copy of the image once per mapping"
        }
        Some("containerd") => {
            "Kubernetes hostUsers: false maps the ids with an idmapped rootfs where the \
             kernel can idmap the layers' filesystem (copyup-trace check says); where it \
             cannot, containerd chowns the whole rootfs, which copies it up"
        }
        Some("docker") => {
            "docker's userns-remap chowns a copy of every image layer, once per remapped \
             root; give the files their owner in the image instead (COPY --chown, or a \
             chown in the build step that adds them)"
        }
        _ => "give the container its ids with an idmapped mount (a user namespace) instead",
    }
}

/// Why `metacopy=on` cannot help this mount, if it cannot.
pub fn metacopy_blocker(o: &OverlayOptions) -> Option<String> {
    if o.metacopy {
        return Some("metacopy is already on".into());
    }
    if o.userxattr {
        return Some(
            "the mount uses userxattr (an unprivileged mount in a user namespace): \
             the kernel refuses metacopy=on with userxattr"
                .into(),
        );
    }
    let redirect_given = o.shown.iter().any(|s| s.starts_with("redirect_dir="));
    if redirect_given && o.redirect_dir != "on" {
        return Some(format!(
            "metacopy=on needs redirect_dir=on, and the mount sets redirect_dir={}: \
             the kernel refuses the pair",
            o.redirect_dir
        ));
    }
    if o.nfs_export {
        return Some("nfs_export=on: the kernel refuses it with metacopy=on".into());
    }
    None
}

/// One mount's advice, as `--report` writes it.
#[derive(Serialize)]
pub struct MountAdvice {
    pub mount: String,
    pub options: OverlayOptions,
    pub copy_ups: u64,
    pub bytes: u64,
    pub metacopies: u64,
    /// Data copied by metadata-only operations: `metacopy_would_avoid` when metacopy can
    /// be turned on, else the bytes it cannot save here.
    pub metadata_only_copy_ups: u64,
    pub metadata_only_bytes: u64,
    pub metadata_only_bytes_by_trigger: std::collections::BTreeMap<&'static str, u64>,
    pub metacopy_would_avoid: u64,
    pub metacopy_blocked_by: Option<String>,
    pub chown_copy_ups: u64,
    pub chown_r_shaped: bool,
    /// Copy-ups by a chown or chmod to the owner and mode the file already had: copied
    /// for nothing, avoided by changing only what differs.
    pub noop_copy_ups: u64,
    pub noop_bytes: u64,
    /// The store that set up the overlay, where its layers say.
    pub store: Option<&'static str>,
    /// How to have this store's mounts made with `metacopy=on`.
    pub metacopy_how: &'static str,
    /// What avoids a `chown -R` here.
    pub chown_how: &'static str,
}

impl MountRow {
    pub fn advice(&self) -> MountAdvice {
        let blocker = metacopy_blocker(&self.info.options);
        let store = store_of(&self.info);
        MountAdvice {
            mount: escape(&self.info.mount_point),
            options: self.info.options.clone(),
            copy_ups: self.copy_ups,
            bytes: self.bytes,
            metacopies: self.metacopies,
            metadata_only_copy_ups: self.meta_trigger_copy_ups,
            metadata_only_bytes: self.meta_trigger_bytes,
            metadata_only_bytes_by_trigger: self
                .by_trigger
                .iter()
                .map(|(t, b)| (t.name(), *b))
                .collect(),
            metacopy_would_avoid: if blocker.is_none() {
                self.meta_trigger_bytes
            } else {
                0
            },
            metacopy_blocked_by: blocker,
            chown_copy_ups: self.chown_copy_ups,
            chown_r_shaped: self.chown_copy_ups >= CHOWN_R_MIN
                && self.chown_copy_ups * 2 >= self.copy_ups,
            noop_copy_ups: self.noop_copy_ups,
            noop_bytes: self.noop_bytes,
            store,
            metacopy_how: metacopy_how(store),
            chown_how: chown_how(store),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        attribution::layers::{ModuleDefaults, OverlayInfo, OverlayOptions},
        events::decode::{CopyUp, Trigger},
        output::{
            aggregate::{mounts::MountTotals, tests::cu},
            render::advice::write_text,
        },
    };

    fn mount(opts: &str) -> Arc<OverlayInfo> {
        let parsed = crate::attribution::layers::parse_super_options(opts.as_bytes());
        Arc::new(OverlayInfo {
            mount_point: Arc::from(&b"/m"[..]),
            options: OverlayOptions::effective(
                &parsed.other,
                &ModuleDefaults {
                    redirect_always_follow: true,
                    ..Default::default()
                },
            ),
            lowers: Vec::new(),
        })
    }

    fn on(info: &Arc<OverlayInfo>, trigger: Trigger, bytes: u64, metacopy: bool) -> CopyUp {
        let mut c = cu(1, "/f", bytes, 1000);
        c.trigger = trigger;
        c.metacopy = metacopy;
        c.overlay = Some(info.clone());
        c
    }

    #[test]
    fn metadata_only_bytes_are_what_metacopy_saves() {
        let m = mount("rw,lowerdir=/l,upperdir=/u,workdir=/w");
        let mut t = MountTotals::default();
        for (trig, bytes) in [
            (Trigger::Chown, 3000),
            (Trigger::Chmod, 5000),
            (Trigger::Utimes, 7000),
            (Trigger::Setxattr, 11000),
            (Trigger::OpenWrite, 17000),
            (Trigger::Truncate, 19000),
            (Trigger::Mkdir, 0),
        ] {
            t.add(&on(&m, trig, bytes, false));
        }
        let mut waited = on(&m, Trigger::Chown, 3000, false);
        waited.waited = true;
        t.add(&waited);
        t.add(&cu(1, "/no-overlay", 99, 1));
        let a = t.rows()[0].advice();
        assert_eq!((a.copy_ups, a.bytes), (7, 62000));
        assert_eq!(a.metadata_only_bytes, 26000);
        assert_eq!(a.metacopy_would_avoid, 26000);
        assert_eq!(a.metadata_only_bytes_by_trigger["setxattr"], 11000);
        assert_eq!(a.metacopy_blocked_by, None);
        assert!(!a.chown_r_shaped);
        let mut text = Vec::new();
        write_text(&mut text, &t).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("Overlay /m: metacopy=off, redirect_dir=follow, index=off"),
            "{text}"
        );
        assert!(text.contains("26000 bytes less"), "{text}");
    }

    #[test]
    fn blockers() {
        let b = |o: &str| metacopy_blocker(&mount(o).options);
        assert_eq!(b("rw,lowerdir=/l"), None);
        assert!(b("rw,lowerdir=/l,metacopy=on")
            .unwrap()
            .contains("already on"));
        assert!(b("rw,lowerdir=/l,userxattr").unwrap().contains("userxattr"));
        assert!(b("rw,lowerdir=/l,redirect_dir=nofollow")
            .unwrap()
            .contains("redirect_dir=nofollow"));
        assert!(b("rw,lowerdir=/l,nfs_export=on")
            .unwrap()
            .contains("nfs_export"));
        let m = mount("rw,lowerdir=/l,userxattr");
        let mut t = MountTotals::default();
        t.add(&on(&m, Trigger::Chown, 10, false));
        let a = t.rows()[0].advice();
        assert_eq!((a.metadata_only_bytes, a.metacopy_would_avoid), (10, 0));
    }

    #[test]
    fn chown_r_and_metacopy_at_work() {
        let m = mount("rw,lowerdir=/l,metacopy=on");
        let mut t = MountTotals::default();
        for _ in 0..20 {
            t.add(&on(&m, Trigger::Lchown, 0, true));
        }
        t.add(&on(&m, Trigger::OpenWrite, 100, false));
        let a = t.rows()[0].advice();
        assert_eq!((a.metacopies, a.metadata_only_bytes), (20, 0));
        assert!(a.chown_r_shaped);
        let mut text = Vec::new();
        write_text(&mut text, &t).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("20 copy-ups copied metadata only"), "{text}");
        assert!(text.contains("idmapped mount"), "{text}");
    }
}
