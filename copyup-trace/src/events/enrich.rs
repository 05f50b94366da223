//! Adds to a decoded copy-up what only user space knows: the overlay's mount point, its
//! options and lower stack (`layers`; the kernel side told which layer of it), the cgroup path and the container
//! it names, with its name and image from its runtime (`runtimes`). Results are shared
//! (`Arc`) and cached per
//! device and cgroup id, so a stream of copy-ups costs a hash lookup each, not an
//! allocation or a parse.

use std::{os::unix::ffi::OsStrExt, sync::Arc};

use rustc_hash::FxHashMap;

use crate::{
    attribution::cgroups::{self, CgroupResolver, Container},
    attribution::layers::{Layers, ModuleDefaults, OverlayInfo},
    attribution::mounts::OverlayMounts,
    attribution::runtimes::Runtimes,
    events::decode::CopyUp,
};

type CgroupInfo = (Arc<str>, Option<Arc<Container>>);

pub struct Enricher {
    /// `None` when mountinfo could not be read: paths stay relative to the overlay.
    mounts: Option<OverlayMounts>,
    cgroups: CgroupResolver,
    /// Last mount point handed out per device; replaced when the mount table changes.
    mount_points: FxHashMap<u32, Arc<[u8]>>,
    /// Cgroup ids are never reused and a cgroup's path does not change while it exists.
    by_cgroup: FxHashMap<u64, CgroupInfo>,
    layers: Layers,
    /// Asked once per new cgroup; `None`: containers keep only runtime and id.
    runtimes: Option<Runtimes>,
}

impl Enricher {
    pub fn new(mounts: Option<OverlayMounts>, cgroups: CgroupResolver) -> Enricher {
        Enricher {
            mounts,
            cgroups,
            mount_points: FxHashMap::default(),
            by_cgroup: FxHashMap::default(),
            layers: Layers::new(ModuleDefaults::load()),
            runtimes: None,
        }
    }

    /// Containers get their names and images from `runtimes`.
    pub fn with_runtimes(mut self, runtimes: Runtimes) -> Enricher {
        self.runtimes = Some(runtimes);
        self
    }

    pub fn enrich(&mut self, c: &mut CopyUp) {
        c.mount = self.mount_point(c.dev);
        c.overlay = self.overlay(c);
        // An index the mount does not list (a mount table read before a remount) is
        // not named.
        let listed = |i: &u32| {
            c.overlay
                .as_ref()
                .is_some_and(|o| (*i as usize) < o.lowers.len())
        };
        c.layer = c.layer.filter(listed);
        c.data_layer = c.data_layer.filter(listed);
        let (cgroup, container) = match self.cgroup(c.cgroup_id) {
            Some((path, container)) => (Some(path.clone()), container.clone()),
            None => (None, None),
        };
        c.cgroup = cgroup;
        c.container = container;
    }

    fn mount_point(&mut self, dev: u32) -> Option<Arc<[u8]>> {
        let path = self.mounts.as_mut()?.mount_point_or_reload(dev)?;
        let bytes = path.as_os_str().as_bytes();
        match self.mount_points.get(&dev) {
            Some(known) if &known[..] == bytes => Some(known.clone()),
            _ => {
                let fresh: Arc<[u8]> = Arc::from(bytes);
                self.mount_points.insert(dev, fresh.clone());
                Some(fresh)
            }
        }
    }

    /// The overlay's options and lower stack, built once per mount. Layer sizes are
    /// left to the outputs that show them.
    fn overlay(&mut self, c: &CopyUp) -> Option<Arc<OverlayInfo>> {
        let (Some(mount), Some(mounts)) = (&c.mount, &self.mounts) else {
            return None;
        };
        let opts = mounts.super_options(c.dev)?;
        Some(self.layers.overlay(c.dev, mount, opts))
    }

    fn cgroup(&mut self, id: u64) -> Option<&CgroupInfo> {
        if !self.by_cgroup.contains_key(&id) {
            // Unknown ids are not cached: a later rescan may find them.
            let path = self.cgroups.resolve(id)?;
            let runtimes = &mut self.runtimes;
            let container = cgroups::container_of(path).map(|c| {
                let details = runtimes.as_mut().and_then(|r| r.details(c.runtime, &c.id));
                Arc::new(match details {
                    Some(d) => c.with_details(d),
                    None => c,
                })
            });
            self.by_cgroup.insert(id, (Arc::from(path), container));
        }
        self.by_cgroup.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::MetadataExt};

    use super::*;

    /// An overlay from a mountinfo file: the copy-up gets the mount's options and
    /// stack, in which the kernel's layer index names a directory.
    #[test]
    fn lower_layer_from_mountinfo() {
        let root = tempfile::tempdir().unwrap();
        let (top, bottom) = (root.path().join("top"), root.path().join("bottom"));
        fs::create_dir_all(top.join("d")).unwrap();
        fs::create_dir_all(bottom.join("d")).unwrap();
        fs::write(bottom.join("d/f"), b"12345").unwrap();
        let info = root.path().join("mountinfo");
        fs::write(
            &info,
            format!(
                "900 22 0:900 / /merged rw - overlay overlay rw,lowerdir={}:{},upperdir=/u,workdir=/w,index=on\n",
                top.display(),
                bottom.display()
            ),
        )
        .unwrap();
        let mounts = OverlayMounts::load_from(&info).unwrap();
        let mut e = Enricher::new(Some(mounts), CgroupResolver::new(root.path()));
        let mut c = CopyUp {
            dev: 900,
            path: b"/d/f".to_vec(),
            bytes: 5,
            layer: Some(1),
            ..Default::default()
        };
        e.enrich(&mut c);
        assert_eq!(c.mount.as_deref(), Some(&b"/merged"[..]));
        assert_eq!(c.layer, Some(1), "the kernel's answer stands");
        let layer = c.lower_layer().unwrap();
        assert_eq!(layer.resolved, bottom.as_os_str().as_bytes());
        assert!(c.overlay.as_ref().unwrap().options.index);
        // An index beyond the mount's stack is not named.
        c.layer = Some(2);
        c.data_layer = Some(5);
        e.enrich(&mut c);
        assert_eq!((c.layer, c.data_layer), (None, None));
        assert!(c.overlay.is_some());
    }

    #[test]
    fn cgroup_and_container_are_shared_and_cached() {
        let root = tempfile::tempdir().unwrap();
        let id = "a".repeat(64);
        let scope = root.path().join(format!("system.slice/docker-{id}.scope"));
        fs::create_dir_all(&scope).unwrap();
        let ino = fs::metadata(&scope).unwrap().ino();
        let mut e = Enricher::new(None, CgroupResolver::new(root.path()));
        let mut c = CopyUp {
            cgroup_id: ino,
            ..Default::default()
        };
        e.enrich(&mut c);
        let first = c.clone();
        assert_eq!(
            first.cgroup.as_deref(),
            Some(&*format!("/system.slice/docker-{id}.scope"))
        );
        let ct = first.container.as_deref().unwrap();
        assert_eq!((ct.runtime, &*ct.id), ("docker", &*id));
        assert!(first.mount.is_none(), "no mount table, no mount point");

        // The second copy-up from that cgroup shares the first one's values.
        e.enrich(&mut c);
        assert!(Arc::ptr_eq(
            first.cgroup.as_ref().unwrap(),
            c.cgroup.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            first.container.as_ref().unwrap(),
            c.container.as_ref().unwrap()
        ));

        c.cgroup_id = ino + 1_000_000;
        e.enrich(&mut c);
        assert!(c.cgroup.is_none() && c.container.is_none(), "unknown id");
    }
}
