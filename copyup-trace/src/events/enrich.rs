//! Adds to a decoded copy-up what only user space knows: the overlay's mount point, its
//! options and lower stack (`layers`; the kernel side told which layer of it), the cgroup path and the container
//! it names, with its name and image from its runtime (`runtimes`). Results are shared
//! (`Arc`) and cached per device and cgroup id, so a stream of copy-ups costs a hash
//! lookup each, not an allocation or a parse. A runtime is asked beside the event loop
//! (`Lookups`): a copy-up of a container whose runtime has not answered yet is marked
//! waiting (`enrich` says so), completed by `complete` once the answer is in, and after
//! `LOOKUP_BOUND` without one, its container is marked unresolved.

use std::{
    os::unix::ffi::OsStrExt,
    sync::Arc,
    time::{Duration, Instant},
};

use hashbrown::Equivalent;

use crate::{
    attribution::cgroups::{self, CgroupResolver, Container},
    attribution::layers::{Layers, ModuleDefaults, OverlayInfo},
    attribution::mounts::OverlayMounts,
    attribution::runtimes::{Answer, Lookups},
    events::decode::CopyUp,
    hashing::{IdMap, NameHasher},
};

type CgroupInfo = (Arc<str>, Option<Arc<Container>>);

/// A question's key: the runtime asked and the container id.
type AskKey = (&'static str, Arc<str>);

/// An `AskKey` borrowed, to look a question up per copy-up without an allocation; it
/// hashes as the tuple does, field by field.
#[derive(Hash)]
struct AskRef<'a>(&'static str, &'a str);

impl Equivalent<AskKey> for AskRef<'_> {
    fn equivalent(&self, key: &AskKey) -> bool {
        self.0 == key.0 && self.1 == &*key.1
    }
}

/// How long a copy-up may wait for its container's runtime to answer: after this, it
/// goes out with the container marked unresolved.
pub const LOOKUP_BOUND: Duration = Duration::from_secs(5);

/// A question to a runtime that has not been answered.
struct Asked {
    since: Instant,
    /// The cgroups whose container it is.
    cgroups: Vec<u64>,
    /// Past `LOOKUP_BOUND`: its containers are marked unresolved until it is answered.
    expired: bool,
}

pub struct Enricher {
    /// `None` when mountinfo could not be read: paths stay relative to the overlay.
    mounts: Option<OverlayMounts>,
    cgroups: CgroupResolver,
    /// Last mount point handed out per device; replaced when the mount table changes.
    mount_points: IdMap<u32, Arc<[u8]>>,
    /// Cgroup ids are never reused and a cgroup's path does not change while it exists.
    by_cgroup: IdMap<u64, CgroupInfo>,
    layers: Layers,
    /// Asked once per new container; `None`: containers keep only runtime and id.
    runtimes: Option<Lookups>,
    /// Questions not answered yet, by (runtime, container id).
    asked: hashbrown::HashMap<AskKey, Asked, NameHasher>,
    bound: Duration,
    /// Cgroup ids not found yet, and when first seen: the resolver rescans at most once a
    /// second, so a cgroup made just after a rescan is found by the next one.
    unseen: IdMap<u64, Instant>,
}

/// How long a copy-up from a cgroup not found yet waits for the resolver's next rescan.
const CGROUP_WAIT: Duration = Duration::from_millis(1500);

impl Enricher {
    pub fn new(mounts: Option<OverlayMounts>, cgroups: CgroupResolver) -> Enricher {
        Enricher {
            mounts,
            cgroups,
            mount_points: IdMap::default(),
            by_cgroup: IdMap::default(),
            layers: Layers::new(ModuleDefaults::load()),
            runtimes: None,
            asked: Default::default(),
            bound: LOOKUP_BOUND,
            unseen: IdMap::default(),
        }
    }

    /// Containers get their names and images from their runtimes, asked through
    /// `lookups`; a copy-up waits at most `bound` for the answer.
    pub fn with_runtimes(mut self, lookups: Lookups, bound: Duration) -> Enricher {
        self.runtimes = Some(lookups);
        self.bound = bound;
        self
    }

    /// Adds mount, layers, cgroup and container to `c`. False while its container's
    /// runtime is still to answer: `complete` it later.
    pub fn enrich(&mut self, c: &mut CopyUp) -> bool {
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
        if cgroup.is_none() && c.cgroup_id != 0 {
            self.unseen.entry(c.cgroup_id).or_insert_with(Instant::now);
        }
        c.cgroup = cgroup;
        c.container = container;
        !self.waits(c)
    }

    /// Whether `c` still waits: for its cgroup to be found (at most `CGROUP_WAIT`), or for
    /// its container's runtime to answer (within the bound).
    fn waits(&self, c: &CopyUp) -> bool {
        let cgroup_unseen = c.cgroup.is_none()
            && self
                .unseen
                .get(&c.cgroup_id)
                .is_some_and(|t| t.elapsed() < CGROUP_WAIT);
        cgroup_unseen
            || c.container.as_ref().is_some_and(|k| {
                self.asked
                    .get(&AskRef(k.runtime, &k.id))
                    .is_some_and(|a| !a.expired)
            })
    }

    /// Takes in the answers that have come and marks the questions past the bound; then
    /// a waiting copy-up can be `complete`d.
    pub fn poll(&mut self, now: Instant) {
        let answers: Vec<Answer> = match &self.runtimes {
            Some(l) => l.answered().collect(),
            None => return,
        };
        for a in answers {
            self.answered(a);
        }
        let bound = self.bound;
        let mut late = Vec::new();
        for ((runtime, id), q) in &mut self.asked {
            if !q.expired && now.duration_since(q.since) >= bound {
                q.expired = true;
                late.push((*runtime, id.clone(), q.cgroups.clone()));
            }
        }
        for (runtime, id, cgroups) in late {
            log::warn!(
                "{runtime} did not answer for container {id} within {bound:?}: its copy-ups \
                 are reported by id, marked unresolved, until it does"
            );
            self.update(&cgroups, |k| Container {
                unresolved: true,
                ..k.clone()
            });
        }
    }

    /// Waits, at most until the oldest question is past the bound, for every answer:
    /// for the end of a run.
    pub fn settle(&mut self) {
        while let Some(since) = self
            .asked
            .values()
            .filter(|q| !q.expired)
            .map(|q| q.since)
            .min()
        {
            let left = self.bound.saturating_sub(since.elapsed());
            match self.runtimes.as_ref().and_then(|l| l.wait(left)) {
                Some(a) => self.answered(a),
                None => self.poll(Instant::now() + self.bound),
            }
        }
    }

    fn answered(&mut self, a: Answer) {
        let Some(q) = self.asked.remove(&AskRef(a.runtime, &a.id)) else {
            return;
        };
        let (details, failed) = (a.details, a.failed);
        for (dir, step) in details.iter().flat_map(|d| &d.layer_steps) {
            self.layers.learn_step(dir, step);
        }
        self.update(&q.cgroups, |k| {
            let bare = Container {
                unresolved: failed,
                ..k.clone()
            };
            match &details {
                Some(d) => bare.with_details(d.clone()),
                None => bare,
            }
        });
    }

    /// Replaces the container of `cgroups` with `f` of it.
    fn update(&mut self, cgroups: &[u64], f: impl Fn(&Container) -> Container) {
        for id in cgroups {
            if let Some((_, Some(k))) = self.by_cgroup.get_mut(id) {
                *k = Arc::new(f(k));
            }
        }
    }

    /// A cgroup made while tracing, as the kernel side reported it.
    pub fn cgroup_made(&mut self, id: u64, path: String) {
        self.cgroups.learn(id, path);
    }

    /// Brings a copy-up that `enrich` left waiting up to date; false while it still waits.
    pub fn complete(&mut self, c: &mut CopyUp) -> bool {
        if c.cgroup.is_none() && self.unseen.contains_key(&c.cgroup_id) {
            // Found by a rescan since (this asks the resolver again).
            if let Some((path, _)) = self.cgroup(c.cgroup_id) {
                c.cgroup = Some(path.clone());
                self.unseen.remove(&c.cgroup_id);
            }
        }
        if let Some((_, container)) = self.by_cgroup.get(&c.cgroup_id) {
            c.container = container.clone();
        }
        !self.waits(c)
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
            let container = cgroups::container_of(path);
            if let (Some(k), Some(lookups)) = (&container, &self.runtimes) {
                let key = (k.runtime, Arc::from(k.id.as_str()));
                let q = self.asked.entry(key).or_insert_with(|| {
                    lookups.ask(k.runtime, &k.id);
                    Asked {
                        since: Instant::now(),
                        cgroups: Vec::new(),
                        expired: false,
                    }
                });
                q.cgroups.push(id);
            }
            self.by_cgroup
                .insert(id, (Arc::from(path), container.map(Arc::new)));
        }
        self.by_cgroup.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::MetadataExt};

    use super::*;
    use crate::attribution::runtimes::Roots;

    /// A question is found by its borrowed key: same hash, same equality.
    #[test]
    fn a_question_is_found_without_owning_its_key() {
        let mut asked: hashbrown::HashMap<AskKey, u32, NameHasher> = Default::default();
        asked.insert(("docker", Arc::from("abc")), 1);
        asked.insert(("podman", Arc::from("abc")), 2);
        assert_eq!(asked.get(&AskRef("docker", "abc")), Some(&1));
        assert_eq!(asked.get(&AskRef("podman", "abc")), Some(&2));
        assert_eq!(asked.get(&AskRef("containerd", "abc")), None);
        assert_eq!(asked.get(&AskRef("docker", "ab")), None);
        assert_eq!(asked.remove(&AskRef("podman", "abc")), Some(2));
        assert_eq!(asked.len(), 1);
    }

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

    fn container_cgroup(root: &std::path::Path, dir: &str) -> u64 {
        let path = root.join(dir);
        fs::create_dir_all(&path).unwrap();
        fs::metadata(&path).unwrap().ino()
    }

    fn roots(dir: &std::path::Path) -> Roots {
        Roots {
            storage: dir.join("storage"),
            docker: dir.join("docker"),
            containerd: dir.join("containerd.sock"),
        }
    }

    /// The runtime is asked beside the caller: the copy-up waits until the answer is
    /// taken in, then carries the container's name and image.
    #[test]
    fn a_copy_up_waits_for_its_runtime_then_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        let id = "e".repeat(64);
        let img = "f".repeat(64);
        let s = dir.path().join("storage");
        fs::create_dir_all(s.join("overlay-containers")).unwrap();
        fs::create_dir_all(s.join("overlay-images")).unwrap();
        fs::write(
            s.join("overlay-containers/containers.json"),
            format!(r#"[{{"id":"{id}","names":["web"],"image":"{img}"}}]"#),
        )
        .unwrap();
        fs::write(
            s.join("overlay-images/images.json"),
            format!(r#"[{{"id":"{img}","names":["localhost/app:2"]}}]"#),
        )
        .unwrap();
        let cg = dir.path().join("cgroup");
        let ino = container_cgroup(&cg, &format!("machine.slice/libpod-{id}.scope"));
        let mut e = Enricher::new(None, CgroupResolver::new(&cg))
            .with_runtimes(Lookups::start(roots(dir.path())), Duration::from_secs(30));
        let mut c = CopyUp {
            cgroup_id: ino,
            ..Default::default()
        };
        assert!(!e.enrich(&mut c), "waits until the answer is taken in");
        let t0 = Instant::now();
        while !e.complete(&mut c) {
            assert!(t0.elapsed() < Duration::from_secs(10), "no answer");
            std::thread::sleep(Duration::from_millis(5));
            e.poll(Instant::now());
        }
        let k = c.container.as_deref().unwrap();
        assert_eq!(
            (
                k.runtime,
                k.name.as_deref(),
                k.image.as_deref(),
                k.unresolved
            ),
            ("podman", Some("web"), Some("localhost/app:2"), false)
        );
        // A later copy-up of that container is ready at once.
        let mut d = CopyUp {
            cgroup_id: ino,
            ..Default::default()
        };
        assert!(e.enrich(&mut d));
        assert_eq!(d.container.as_deref().unwrap().name.as_deref(), Some("web"));
    }

    /// A cgroup made just after the resolver's scan: its copy-up waits for the next
    /// rescan and then carries its cgroup and container.
    #[test]
    fn a_cgroup_made_after_a_scan_is_found_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("cgroup");
        let first = container_cgroup(&cg, "system.slice/first.scope");
        let resolver = CgroupResolver::new(&cg).with_rescan_interval(Duration::from_millis(50));
        let mut e = Enricher::new(None, resolver);
        let mut c = CopyUp {
            cgroup_id: first,
            ..Default::default()
        };
        assert!(e.enrich(&mut c), "found by the first scan");
        let id = "b".repeat(64);
        let late = container_cgroup(&cg, &format!("system.slice/docker-{id}.scope"));
        let mut c = CopyUp {
            cgroup_id: late,
            ..Default::default()
        };
        assert!(!e.enrich(&mut c), "not found yet: waits");
        assert!(c.cgroup.is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(e.complete(&mut c));
        assert_eq!(
            c.cgroup.as_deref(),
            Some(&*format!("/system.slice/docker-{id}.scope"))
        );
        assert_eq!(c.container.as_deref().unwrap().id, id);
    }

    /// A runtime that cannot be asked (no socket) answers at once, and its containers
    /// are marked unresolved: their names are unknown, not absent.
    #[test]
    fn a_runtime_that_cannot_be_asked_leaves_its_containers_unresolved() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("cgroup");
        let mut inos = Vec::new();
        for i in 1..=3 {
            let scope = format!("system.slice/cri-containerd-{i:064}.scope");
            inos.push(container_cgroup(&cg, &scope));
        }
        let mut e = Enricher::new(None, CgroupResolver::new(&cg))
            .with_runtimes(Lookups::start(roots(dir.path())), Duration::from_secs(30));
        let mut copy_ups: Vec<CopyUp> = inos
            .iter()
            .map(|&cgroup_id| CopyUp {
                cgroup_id,
                ..Default::default()
            })
            .collect();
        for c in &mut copy_ups {
            assert!(!e.enrich(c));
        }
        let t0 = Instant::now();
        for c in &mut copy_ups {
            while !e.complete(c) {
                assert!(t0.elapsed() < Duration::from_secs(10), "no answer");
                std::thread::sleep(Duration::from_millis(5));
                e.poll(Instant::now());
            }
            let k = c.container.as_deref().unwrap();
            assert_eq!(
                (k.runtime, k.unresolved, &k.name),
                ("containerd", true, &None)
            );
        }
    }

    /// A runtime that never answers (a socket that accepts and stays silent) holds a
    /// copy-up no longer than the bound; then its container is marked unresolved.
    #[test]
    fn a_silent_runtime_is_given_up_on_after_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let _silent =
            std::os::unix::net::UnixListener::bind(dir.path().join("containerd.sock")).unwrap();
        let id = "a".repeat(64);
        let cg = dir.path().join("cgroup");
        let ino = container_cgroup(&cg, &format!("system.slice/cri-containerd-{id}.scope"));
        let bound = Duration::from_millis(200);
        let mut e = Enricher::new(None, CgroupResolver::new(&cg))
            .with_runtimes(Lookups::start(roots(dir.path())), bound);
        let mut c = CopyUp {
            cgroup_id: ino,
            ..Default::default()
        };
        assert!(!e.enrich(&mut c));
        // Asked before this instant.
        let t0 = Instant::now();
        e.poll(t0 + bound / 2);
        assert!(!e.complete(&mut c), "within the bound it waits");
        e.poll(t0 + bound);
        assert!(e.complete(&mut c), "past the bound it goes");
        let k = c.container.as_deref().unwrap();
        assert_eq!(
            (k.runtime, &*k.id, k.unresolved),
            ("containerd", &*id, true)
        );
        assert_eq!(k.name, None);
        // The end of a run does not wait for it again.
        let t1 = Instant::now();
        e.settle();
        assert!(t1.elapsed() < bound);
    }
}
