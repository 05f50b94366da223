//! Names and images of containers, read where their runtimes keep them: podman's
//! containers/storage (`containers.json`, `images.json`), CRI-O's container config in
//! the same storage (`userdata/config.json`, its `io.kubernetes.*` annotations), docker's
//! per-container `config.v2.json`, containerd's API (its socket, through
//! `containerd-client`). It ends at those stores: which cgroup is which
//! container is `cgroups`', putting the details on copy-ups `enrich`'s.
//!
//! A store is read when an id it has not seen is asked for (once per container: `enrich`
//! caches per cgroup), never per copy-up. A runtime whose store cannot be read is reported
//! once on stderr; its containers keep their runtime and id. While tracing, the questions
//! go to `Lookups`, a thread of its own, so that the event loop never waits on a runtime.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    sync::mpsc,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::{attribution::cgroups::Container, escape::escape};

/// What a runtime knows of one container. Values are as the runtime stores them
/// (untrusted: escape before output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// The container's name; for a Kubernetes pod's container, its name in the pod.
    pub name: Option<String>,
    /// The image as the container was created from it (`localhost/app:1`, `nginx:1.27`).
    pub image: Option<String>,
    /// The image id, hex digits without `sha256:`.
    pub image_id: Option<String>,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    /// The runtime, where the cgroup path could not tell it (a Kubernetes pod's container
    /// under the cgroupfs driver).
    pub runtime: Option<&'static str>,
    /// The image step that created each lower layer directory of the container's rootfs,
    /// where only the runtime's API can pair them (containerd's snapshots).
    pub layer_steps: Vec<(PathBuf, String)>,
}

/// The labels kubelet sets on the containers of a pod (CRI).
const POD_NAME: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";

impl Details {
    /// Pod, namespace and container name from CRI labels, where present.
    fn apply_labels(&mut self, labels: &HashMap<String, String>) {
        if let Some(v) = labels.get(POD_NAME) {
            self.pod = Some(v.clone());
        }
        if let Some(v) = labels.get(POD_NAMESPACE) {
            self.namespace = Some(v.clone());
        }
        if let Some(v) = labels.get(CONTAINER_NAME) {
            self.name = Some(v.clone());
        }
    }
}

fn strip_digest(id: &str) -> String {
    id.strip_prefix("sha256:").unwrap_or(id).to_string()
}

/// Where the runtimes keep their state; the defaults are the packaged ones.
#[derive(Debug, Clone)]
pub struct Roots {
    /// containers/storage's graph root (podman, CRI-O).
    pub storage: PathBuf,
    /// docker's data root.
    pub docker: PathBuf,
    /// containerd's API socket.
    pub containerd: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            storage: PathBuf::from("/var/lib/containers/storage"),
            docker: PathBuf::from("/var/lib/docker"),
            containerd: PathBuf::from("/run/containerd/containerd.sock"),
        }
    }
}

/// The runtimes' stores, read on demand and cached.
pub struct Runtimes {
    roots: Roots,
    podman: PodmanStore,
    docker: HashMap<String, Details>,
    crio: HashMap<String, Details>,
    containerd: HashMap<String, Details>,
    /// One client for the whole run, connected on first use.
    containerd_client: Option<Containerd>,
    /// Runtimes already reported as unreadable.
    warned: HashSet<&'static str>,
}

impl Runtimes {
    pub fn new(roots: Roots) -> Runtimes {
        Runtimes {
            roots,
            podman: PodmanStore::default(),
            docker: HashMap::new(),
            crio: HashMap::new(),
            containerd: HashMap::new(),
            containerd_client: None,
            warned: HashSet::new(),
        }
    }

    /// What `runtime` knows of container `id`; `None` when it does not know it or its
    /// store cannot be read (then said once on stderr).
    pub fn details(&mut self, runtime: &str, id: &str) -> Option<Details> {
        self.ask(runtime, id).ok().flatten()
    }

    /// `details`, telling a runtime that does not know the container (`Ok(None)`) from
    /// one that could not be asked (`Err`, said once on stderr).
    fn ask(&mut self, runtime: &str, id: &str) -> Result<Option<Details>, ()> {
        let (name, found) = match runtime {
            "podman" => ("podman", self.podman.lookup(&self.roots.storage, id)),
            "docker" => ("docker", self.docker_lookup(id)),
            "cri-o" => ("cri-o", self.crio_lookup(id)),
            // Kubelet's cgroupfs layout does not name the runtime: containerd is asked.
            "containerd" | "kubernetes" => ("containerd", self.containerd_lookup(id)),
            _ => return Ok(None),
        };
        found.map_err(|e| {
            if self.warned.insert(name) {
                log::warn!("{name} containers are reported by id only: {e:#}");
            }
        })
    }

    fn containerd_lookup(&mut self, id: &str) -> Result<Option<Details>> {
        if let Some(d) = self.containerd.get(id) {
            return Ok(Some(d.clone()));
        }
        let client = match &mut self.containerd_client {
            Some(c) => c,
            None => self
                .containerd_client
                .insert(Containerd::new(&self.roots.containerd)?),
        };
        let found = client.get(id);
        if found.is_err() {
            // Connected afresh next time: containerd may have restarted.
            client.channel = None;
        }
        let found = found?;
        if let Some(d) = &found {
            self.containerd.insert(id.to_string(), d.clone());
        }
        Ok(found)
    }

    fn crio_lookup(&mut self, id: &str) -> Result<Option<Details>> {
        if let Some(d) = self.crio.get(id) {
            return Ok(Some(d.clone()));
        }
        let d = read_crio(&self.roots.storage, id)?;
        self.crio.insert(id.to_string(), d.clone());
        Ok(Some(d))
    }

    fn docker_lookup(&mut self, id: &str) -> Result<Option<Details>> {
        if let Some(d) = self.docker.get(id) {
            return Ok(Some(d.clone()));
        }
        let d = read_docker(&self.roots.docker, id)?;
        self.docker.insert(id.to_string(), d.clone());
        Ok(Some(d))
    }
}

/// What a runtime answered about one container; `details` is `None` where it does not
/// know it or could not be asked.
#[derive(Debug)]
pub struct Answer {
    pub runtime: &'static str,
    pub id: String,
    pub details: Option<Details>,
    /// The runtime could not be asked (down, unreadable, or no answer in time).
    pub failed: bool,
}

/// Runtime questions answered beside the event loop: a thread per runtime (started on
/// its first question) owns a `Runtimes` for it, and so its one containerd client, takes
/// questions in order and sends back answers, which the event loop collects without
/// waiting. One runtime that does not answer holds up no other.
pub struct Lookups {
    roots: Roots,
    ask: std::cell::RefCell<HashMap<&'static str, mpsc::Sender<String>>>,
    send: mpsc::Sender<Answer>,
    answers: mpsc::Receiver<Answer>,
}

impl Lookups {
    pub fn start(roots: Roots) -> Lookups {
        let (send, answers) = mpsc::channel();
        Lookups {
            roots,
            ask: Default::default(),
            send,
            answers,
        }
    }

    /// Asks `runtime` about container `id`; the answer comes through `answered`. A
    /// runtime whose thread cannot start is answered at once, without details.
    pub fn ask(&self, runtime: &'static str, id: &str) {
        let mut threads = self.ask.borrow_mut();
        let thread = threads.entry(runtime).or_insert_with(|| {
            let (ask, questions) = mpsc::channel::<String>();
            let (roots, send) = (self.roots.clone(), self.send.clone());
            let started = std::thread::Builder::new()
                .name(format!("{runtime}-lookups"))
                .spawn(move || {
                    let mut runtimes = Runtimes::new(roots);
                    for id in questions {
                        let asked = runtimes.ask(runtime, &id);
                        log::debug!("{runtime} answered for {id}: {asked:?}");
                        let answer = Answer {
                            runtime,
                            id,
                            failed: asked.is_err(),
                            details: asked.ok().flatten(),
                        };
                        if send.send(answer).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = started {
                log::warn!("{runtime} containers are reported by id only: {e}");
            }
            ask
        });
        if thread.send(id.to_string()).is_err() {
            let _ = self.send.send(Answer {
                runtime,
                id: id.to_string(),
                details: None,
                failed: true,
            });
        }
    }

    /// The answers that have come, without waiting.
    pub fn answered(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }

    /// The next answer, waiting at most `bound`.
    pub fn wait(&self, bound: Duration) -> Option<Answer> {
        self.answers.recv_timeout(bound).ok()
    }
}

/// The cgroups of the containers `wanted` names (each a name, a full id or a unique id
/// prefix), among `cgroups` (as from `cgroups::container_cgroups`).
pub fn filter_cgroups(
    wanted: &[String],
    cgroups: &[(u64, Container)],
    runtimes: &mut Runtimes,
) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for w in wanted {
        let mut matched: Vec<&str> = Vec::new();
        for (_, c) in cgroups {
            if matched.contains(&c.id.as_str()) {
                continue;
            }
            let by_id = c.id == *w || (w.len() >= 4 && c.id.starts_with(w.as_str()));
            let mut by_name = || {
                runtimes
                    .details(c.runtime, &c.id)
                    .is_some_and(|d| d.name.as_deref() == Some(w.as_str()))
            };
            if by_id || by_name() {
                matched.push(&c.id);
            }
        }
        match matched.len() {
            0 => bail!(
                "--container {}: no running container has this name or id",
                escape(w.as_bytes())
            ),
            1 => {}
            n => bail!(
                "--container {}: {n} containers match; give more of the id",
                escape(w.as_bytes())
            ),
        }
        ids.extend(
            cgroups
                .iter()
                .filter(|(_, c)| c.id == matched[0])
                .map(|(id, _)| *id),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// How long one question to containerd may take.
const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(2);

/// containerd's API, through one connection kept for the run. The client is async; it
/// has a small runtime of its own, so that it can be asked from plain code (the lookup
/// thread, or the start-up before the event loop runs).
struct Containerd {
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
    channel: Option<tonic::transport::Channel>,
}

impl Containerd {
    fn new(socket: &Path) -> Result<Containerd> {
        Ok(Containerd {
            socket: socket.to_path_buf(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            channel: None,
        })
    }

    /// Container `id`, in whichever namespace holds it (`k8s.io` for Kubernetes, `moby`
    /// for docker, `default` for ctr).
    fn get(&mut self, id: &str) -> Result<Option<Details>> {
        let Containerd {
            socket,
            rt,
            channel,
        } = self;
        rt.block_on(async {
            tokio::time::timeout(CONTAINERD_TIMEOUT, async {
                let ch = match channel {
                    Some(c) => c.clone(),
                    None => channel.insert(containerd_connect(socket).await?).clone(),
                };
                containerd_ask(socket, ch, id).await
            })
            .await
            .with_context(|| format!("{} did not answer in time", socket.display()))?
        })
    }
}

async fn containerd_connect(socket: &Path) -> Result<tonic::transport::Channel> {
    // The transport's error repeats its cause at each level: say the innermost once.
    containerd_client::connect(socket).await.map_err(|e| {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        anyhow::anyhow!("connecting to {}: {cause}", socket.display())
    })
}

async fn containerd_ask(
    socket: &Path,
    channel: tonic::transport::Channel,
    id: &str,
) -> Result<Option<Details>> {
    use containerd_client::services::v1::{
        containers_client::ContainersClient, namespaces_client::NamespacesClient,
        GetContainerRequest, ListNamespacesRequest,
    };
    let namespaces = NamespacesClient::new(channel.clone())
        .list(ListNamespacesRequest::default())
        .await
        .with_context(|| format!("listing namespaces at {}", socket.display()))?
        .into_inner()
        .namespaces;
    let mut containers = ContainersClient::new(channel.clone());
    for ns in namespaces {
        let mut req = tonic::Request::new(GetContainerRequest { id: id.to_string() });
        let Ok(value) = ns.name.parse() else {
            continue;
        };
        req.metadata_mut().insert("containerd-namespace", value);
        match containers.get(req).await {
            Ok(r) => {
                let Some(c) = r.into_inner().container else {
                    continue;
                };
                // Without the steps the container is still named: they are asked after.
                let layer_steps = containerd_steps(&channel, &ns.name, &c)
                    .await
                    .map_err(|e| log::debug!("image steps of container {id}: {e:#}"))
                    .unwrap_or_default();
                let mut d = Details {
                    image: (!c.image.is_empty()).then_some(c.image),
                    runtime: Some("containerd"),
                    layer_steps,
                    ..Default::default()
                };
                d.apply_labels(&c.labels.into_iter().collect());
                return Ok(Some(d));
            }
            Err(s) if s.code() == tonic::Code::NotFound => continue,
            Err(s) => return Err(anyhow::anyhow!("{}: {}", socket.display(), s.message())),
        }
    }
    Ok(None)
}

/// A request in containerd namespace `ns`.
fn in_namespace<T>(ns: &str, message: T) -> Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        "containerd-namespace",
        ns.parse().context("namespace name")?,
    );
    Ok(req)
}

/// The image step that created each lower layer of container `c`'s snapshot: its mounts'
/// `lowerdir` (topmost first) paired with the history of its image's config.
async fn containerd_steps(
    channel: &tonic::transport::Channel,
    ns: &str,
    c: &containerd_client::services::v1::Container,
) -> Result<Vec<(PathBuf, String)>> {
    use containerd_client::services::v1::{
        images_client::ImagesClient,
        snapshots::{snapshots_client::SnapshotsClient, MountsRequest},
        GetImageRequest,
    };
    let mounts = SnapshotsClient::new(channel.clone())
        .mounts(in_namespace(
            ns,
            MountsRequest {
                snapshotter: c.snapshotter.clone(),
                key: c.snapshot_key.clone(),
            },
        )?)
        .await?
        .into_inner()
        .mounts;
    let lowers: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.r#type == "overlay")
        .flat_map(|m| &m.options)
        .filter_map(|o| o.strip_prefix("lowerdir="))
        .flat_map(|v| v.split(':'))
        .map(PathBuf::from)
        .collect();
    let target = ImagesClient::new(channel.clone())
        .get(in_namespace(
            ns,
            GetImageRequest {
                name: c.image.clone(),
            },
        )?)
        .await?
        .into_inner()
        .image
        .and_then(|i| i.target)
        .context("the image has no target")?;
    let config = containerd_image_config(channel, ns, target.digest).await?;
    let steps = crate::attribution::history::stack_steps(&config, lowers.len())
        .context("the image's layers are not the container's lower stack")?;
    Ok(lowers
        .into_iter()
        .zip(steps)
        .filter_map(|(dir, step)| Some((dir, step?)))
        .collect())
}

/// This machine's architecture as image platforms name it.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The config of the image whose manifest (or index: this machine's platform, else its
/// first manifest) is `digest`, from containerd's content store.
async fn containerd_image_config(
    channel: &tonic::transport::Channel,
    ns: &str,
    mut digest: String,
) -> Result<Vec<u8>> {
    #[derive(Deserialize)]
    struct Manifest {
        config: Option<Descriptor>,
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    #[derive(Deserialize)]
    struct Descriptor {
        digest: String,
        platform: Option<Platform>,
    }
    #[derive(Deserialize)]
    struct Platform {
        os: String,
        architecture: String,
    }
    // An index of indexes is allowed; a few levels are all images have.
    for _ in 0..4 {
        let m: Manifest = serde_json::from_slice(&containerd_blob(channel, ns, &digest).await?)
            .with_context(|| format!("manifest {digest}"))?;
        if let Some(config) = m.config {
            return containerd_blob(channel, ns, &config.digest).await;
        }
        let ours = m.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == oci_arch())
        });
        digest = ours
            .or(m.manifests.first())
            .context("an index without manifests")?
            .digest
            .clone();
    }
    anyhow::bail!("no image config within 4 levels of indexes")
}

/// Manifests and configs are small; anything larger is not one.
const BLOB_LIMIT: usize = 4 << 20;

/// One blob of containerd's content store.
async fn containerd_blob(
    channel: &tonic::transport::Channel,
    ns: &str,
    digest: &str,
) -> Result<Vec<u8>> {
    use containerd_client::services::v1::{content_client::ContentClient, ReadContentRequest};
    let mut stream = ContentClient::new(channel.clone())
        .read(in_namespace(
            ns,
            ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            },
        )?)
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await? {
        out.extend_from_slice(&chunk.data);
        anyhow::ensure!(
            out.len() <= BLOB_LIMIT,
            "blob {digest} is over {BLOB_LIMIT} bytes"
        );
    }
    Ok(out)
}

/// containers/storage's record of one container (`containers.json`).
#[derive(Deserialize)]
struct StorageContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    /// The image id.
    #[serde(default)]
    image: String,
    /// JSON in a string, written by podman: `image-name`, `image-id`, `name`.
    #[serde(default)]
    metadata: String,
}

#[derive(Deserialize, Default)]
struct PodmanMetadata {
    #[serde(rename = "image-name")]
    image_name: Option<String>,
    #[serde(rename = "image-id")]
    image_id: Option<String>,
    name: Option<String>,
}

/// containers/storage's record of one image (`images.json`).
#[derive(Deserialize)]
struct StorageImage {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

#[derive(Default)]
struct PodmanStore {
    by_id: HashMap<String, Details>,
    /// containers.json's modification time when it was last read.
    read_at: Option<SystemTime>,
}

impl PodmanStore {
    fn lookup(&mut self, root: &Path, id: &str) -> Result<Option<Details>> {
        if let Some(d) = self.by_id.get(id) {
            return Ok(Some(d.clone()));
        }
        let containers = root.join("overlay-containers/containers.json");
        let mtime = fs::metadata(&containers)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading {}", containers.display()))?;
        // A new container is written to containers.json before it starts: an unchanged file
        // cannot know an id it did not know before.
        if self.read_at != Some(mtime) {
            self.by_id = read_podman(root)?;
            self.read_at = Some(mtime);
        }
        Ok(self.by_id.get(id).cloned())
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Every container in podman's store, by id.
fn read_podman(root: &Path) -> Result<HashMap<String, Details>> {
    let containers: Vec<StorageContainer> =
        read_json(&root.join("overlay-containers/containers.json"))?;
    // Image names are a fallback for containers whose metadata lacks them; a missing
    // images.json (no image pulled yet) is not an error.
    let images: Vec<StorageImage> =
        read_json(&root.join("overlay-images/images.json")).unwrap_or_default();
    let image_names: HashMap<&str, &str> = images
        .iter()
        .filter_map(|i| Some((i.id.as_str(), i.names.first()?.as_str())))
        .collect();
    Ok(containers
        .iter()
        .map(|c| {
            let meta: PodmanMetadata = serde_json::from_str(&c.metadata).unwrap_or_default();
            let image_id = meta
                .image_id
                .filter(|s| !s.is_empty())
                .or_else(|| (!c.image.is_empty()).then(|| c.image.clone()))
                .map(|s| strip_digest(&s));
            let image = meta.image_name.filter(|s| !s.is_empty()).or_else(|| {
                image_names
                    .get(image_id.as_deref().unwrap_or(""))
                    .map(|s| s.to_string())
            });
            let d = Details {
                name: meta.name.or_else(|| c.names.first().cloned()),
                image,
                image_id,
                ..Default::default()
            };
            (c.id.clone(), d)
        })
        .collect())
}

/// docker's `containers/<id>/config.v2.json`, the fields used here.
#[derive(Deserialize)]
struct DockerConfigV2 {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Config", default)]
    config: DockerConfig,
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// The part of an OCI runtime config CRI-O writes that names the container.
#[derive(Deserialize)]
struct OciConfig {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// CRI-O's annotations for the image, as the pod asked for it and as it resolved.
const CRIO_IMAGE_NAME: &str = "io.kubernetes.cri-o.ImageName";
const CRIO_IMAGE_REF: &str = "io.kubernetes.cri-o.ImageRef";

/// A CRI-O container: the OCI config CRI-O keeps in the container's containers/storage
/// directory, whose annotations carry kubelet's labels and the image.
fn read_crio(storage: &Path, id: &str) -> Result<Details> {
    let path = storage
        .join("overlay-containers")
        .join(id)
        .join("userdata/config.json");
    let c: OciConfig = read_json(&path)?;
    let get = |k: &str| c.annotations.get(k).filter(|v| !v.is_empty()).cloned();
    let mut d = Details {
        image: get(CRIO_IMAGE_NAME),
        image_id: get(CRIO_IMAGE_REF).map(|r| strip_digest(&r)),
        ..Default::default()
    };
    d.apply_labels(&c.annotations);
    Ok(d)
}

fn read_docker(root: &Path, id: &str) -> Result<Details> {
    let path = root.join("containers").join(id).join("config.v2.json");
    let c: DockerConfigV2 = read_json(&path)?;
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let mut d = Details {
        // docker names start with the `/` of its old link hierarchy.
        name: non_empty(c.name.trim_start_matches('/').to_string()),
        image: non_empty(c.config.image),
        image_id: non_empty(strip_digest(&c.image)),
        ..Default::default()
    };
    if let Some(labels) = &c.config.labels {
        d.apply_labels(labels);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8435ee7fe29c7d28c899c4a78fc7d3364a92210f3ca7824a60c42b3747a42452";
    const IMG: &str = "82166efbe1ba334781261d0fd8ff8ff79acfc4572366978323b20afd38cfd047";

    fn roots(dir: &Path) -> Roots {
        Roots {
            storage: dir.join("storage"),
            docker: dir.join("docker"),
            containerd: dir.join("containerd.sock"),
        }
    }

    fn podman_store(dir: &Path, containers: &str) {
        let s = dir.join("storage");
        fs::create_dir_all(s.join("overlay-containers")).unwrap();
        fs::create_dir_all(s.join("overlay-images")).unwrap();
        fs::write(s.join("overlay-containers/containers.json"), containers).unwrap();
        fs::write(
            s.join("overlay-images/images.json"),
            format!(r#"[{{"id":"{IMG}","names":["localhost/app:2"]}}]"#),
        )
        .unwrap();
    }

    /// A CRI-O container's config, as CRI-O writes it into containers/storage.
    #[test]
    fn crio_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let u = dir
            .path()
            .join("storage/overlay-containers")
            .join(ID)
            .join("userdata");
        fs::create_dir_all(&u).unwrap();
        fs::write(
            u.join("config.json"),
            format!(
                r#"{{"ociVersion":"1.0.2","annotations":{{
                    "io.kubernetes.container.name":"api","io.kubernetes.pod.name":"shop-0",
                    "io.kubernetes.pod.namespace":"prod",
                    "io.kubernetes.cri-o.ImageName":"quay.io/acme/api:1",
                    "io.kubernetes.cri-o.ImageRef":"sha256:{IMG}",
                    "io.kubernetes.cri-o.ContainerType":"container"}}}}"#
            ),
        )
        .unwrap();
        let mut r = Runtimes::new(roots(dir.path()));
        assert_eq!(
            r.details("cri-o", ID),
            Some(Details {
                name: Some("api".into()),
                image: Some("quay.io/acme/api:1".into()),
                image_id: Some(IMG.into()),
                pod: Some("shop-0".into()),
                namespace: Some("prod".into()),
                ..Default::default()
            })
        );
        assert!(r.warned.is_empty());
    }

    #[test]
    fn podman_names_and_images() {
        let dir = tempfile::tempdir().unwrap();
        // As podman 4.3 writes it.
        podman_store(
            dir.path(),
            &format!(
                r#"[{{"id":"{ID}","names":["web"],"image":"{IMG}","layer":"0d3a","metadata":"{{\"image-name\":\"localhost/app:2\",\"image-id\":\"{IMG}\",\"name\":\"web\",\"created-at\":1795714263}}","created":"2026-11-26T17:31:03Z"}},
                   {{"id":"{}","names":["bare"],"image":"{IMG}"}}]"#,
                "b".repeat(64)
            ),
        );
        let mut r = Runtimes::new(roots(dir.path()));
        let want = Details {
            name: Some("web".into()),
            image: Some("localhost/app:2".into()),
            image_id: Some(IMG.into()),
            ..Default::default()
        };
        assert_eq!(r.details("podman", ID), Some(want));
        // Without podman's metadata: the store's name, the image's name from images.json.
        let bare = r.details("podman", &"b".repeat(64)).unwrap();
        assert_eq!(bare.name.as_deref(), Some("bare"));
        assert_eq!(bare.image.as_deref(), Some("localhost/app:2"));
        assert_eq!(r.details("podman", &"c".repeat(64)), None);
        assert!(r.warned.is_empty());
    }

    #[test]
    fn podman_store_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        podman_store(dir.path(), "[]");
        let mut r = Runtimes::new(roots(dir.path()));
        assert_eq!(r.details("podman", ID), None);
        podman_store(
            dir.path(),
            &format!(r#"[{{"id":"{ID}","names":["late"],"image":"{IMG}"}}]"#),
        );
        // Make sure the modification time differs from the first read's.
        let f = fs::File::options()
            .write(true)
            .open(
                dir.path()
                    .join("storage/overlay-containers/containers.json"),
            )
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH).unwrap();
        let d = r.details("podman", ID).unwrap();
        assert_eq!(d.name.as_deref(), Some("late"));
    }

    #[test]
    fn unreadable_store_warns_once_and_keeps_going() {
        let dir = tempfile::tempdir().unwrap();
        podman_store(dir.path(), "not json");
        let mut r = Runtimes::new(roots(dir.path()));
        assert_eq!(r.details("podman", ID), None);
        assert_eq!(r.details("podman", &"d".repeat(64)), None);
        assert_eq!(r.warned.len(), 1);
        assert_eq!(r.details("docker", ID), None);
        assert_eq!(r.warned.len(), 2);
        // No containerd socket: one warning for both names of its containers.
        assert_eq!(r.details("kubernetes", ID), None);
        assert_eq!(r.details("containerd", ID), None);
        assert_eq!(r.warned.len(), 3);
        assert_eq!(r.details("cri-o", ID), None);
    }

    #[test]
    fn container_filter_by_name_id_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let other = "b".repeat(64);
        podman_store(
            dir.path(),
            &format!(
                r#"[{{"id":"{ID}","names":["web"],"image":"{IMG}"}},{{"id":"{other}","names":["db"],"image":"{IMG}"}}]"#
            ),
        );
        let mut r = Runtimes::new(roots(dir.path()));
        let ct = |id: &str| Container {
            runtime: "podman",
            id: id.to_string(),
            ..Default::default()
        };
        // A container's scope and a subgroup of it, another container, a docker one.
        let cgroups = [
            (10, ct(ID)),
            (11, ct(ID)),
            (20, ct(&other)),
            (
                30,
                Container {
                    runtime: "docker",
                    id: "8435ee0000000000000000000000000000000000000000000000000000000000".into(),
                    ..Default::default()
                },
            ),
        ];
        let f = |w: &[&str], r: &mut Runtimes| {
            let w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            filter_cgroups(&w, &cgroups, r).map_err(|e| e.to_string())
        };
        assert_eq!(f(&["web"], &mut r), Ok(vec![10, 11]));
        assert_eq!(f(&[ID], &mut r), Ok(vec![10, 11]));
        assert_eq!(f(&["bbbbbb", "web"], &mut r), Ok(vec![10, 11, 20]));
        assert_eq!(f(&["8435ee7f"], &mut r), Ok(vec![10, 11]));
        assert_eq!(
            f(&["8435ee"], &mut r),
            Err("--container 8435ee: 2 containers match; give more of the id".into())
        );
        assert_eq!(
            f(&["web\x1b[2J"], &mut r),
            Err("--container web\\x1b[2J: no running container has this name or id".into())
        );
    }

    #[test]
    fn docker_config_and_cri_labels() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("docker/containers").join(ID);
        fs::create_dir_all(&c).unwrap();
        fs::write(
            c.join("config.v2.json"),
            format!(
                r#"{{"ID":"{ID}","Name":"/dweb","Image":"sha256:{IMG}","Config":{{"Image":"app:3","Labels":{{}}}},"Driver":"overlay2"}}"#
            ),
        )
        .unwrap();
        let mut r = Runtimes::new(roots(dir.path()));
        let d = r.details("docker", ID).unwrap();
        assert_eq!(
            (d.name.as_deref(), d.image.as_deref(), d.image_id.as_deref()),
            (Some("dweb"), Some("app:3"), Some(IMG))
        );
        fs::write(
            c.join("config.v2.json"),
            format!(
                r#"{{"Name":"/k8s_app_web-0_shop_uid_0","Image":"sha256:{IMG}","Config":{{"Image":"app:3","Labels":{{"io.kubernetes.pod.name":"web-0","io.kubernetes.pod.namespace":"shop","io.kubernetes.container.name":"app"}}}}}}"#
            ),
        )
        .unwrap();
        // Cached: the first read stands.
        assert_eq!(
            r.details("docker", ID).unwrap().name.as_deref(),
            Some("dweb")
        );
        let d = Runtimes::new(roots(dir.path()))
            .details("docker", ID)
            .unwrap();
        assert_eq!(
            (d.name.as_deref(), d.pod.as_deref(), d.namespace.as_deref()),
            (Some("app"), Some("web-0"), Some("shop"))
        );
    }
}
