//! The DaemonSet's pod (`deploy/kubernetes/daemonset.yaml`) as `podman run` runs it in the
//! userland guest: its host PID namespace, capabilities, security options, read-only root,
//! memory limit, hostPath volumes (with kubelet's type checks and the mounts' propagation)
//! and arguments, written as a shell function for `guest/userland/image.sh`. Every field
//! of the pod spec is either translated or named here as not changing what the tool can
//! see or do; an unknown field is an error, so the guest never runs a pod the manifest
//! no longer describes. Running it, and what is checked, are the image family's.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::{de::IgnoredAny, Deserialize};

use crate::deploy::MANIFEST;

#[derive(Deserialize)]
struct Object {
    kind: String,
    #[serde(default)]
    spec: Option<DaemonSetSpec>,
}

#[derive(Deserialize)]
struct DaemonSetSpec {
    template: Template,
}

#[derive(Deserialize)]
struct Template {
    spec: PodSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PodSpec {
    #[serde(rename = "hostPID", default)]
    host_pid: bool,
    #[serde(default)]
    host_network: bool,
    /// No API server in the guest: nothing to mount either way.
    #[serde(default)]
    #[allow(dead_code)]
    automount_service_account_token: Option<bool>,
    /// Where the pod is scheduled, not what it can do there.
    #[serde(default)]
    #[allow(dead_code)]
    tolerations: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    priority_class_name: IgnoredAny,
    #[serde(default)]
    termination_grace_period_seconds: Option<u64>,
    containers: Vec<Container>,
    #[serde(default)]
    volumes: Vec<Volume>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Container {
    #[allow(dead_code)]
    name: String,
    /// Replaced by the image built in the guest from the repository's Containerfile.
    #[allow(dead_code)]
    image: String,
    #[serde(default)]
    args: Vec<String>,
    /// The pod network's and kubelet's: the guest runs the pod without a network.
    #[serde(default)]
    #[allow(dead_code)]
    ports: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    readiness_probe: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    liveness_probe: IgnoredAny,
    #[serde(default)]
    resources: Resources,
    security_context: SecurityContext,
    #[serde(default)]
    volume_mounts: Vec<VolumeMount>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Resources {
    /// Scheduling only.
    #[serde(default)]
    #[allow(dead_code)]
    requests: IgnoredAny,
    #[serde(default)]
    limits: Limits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    memory: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecurityContext {
    #[serde(default)]
    privileged: bool,
    #[serde(default = "yes")]
    allow_privilege_escalation: bool,
    #[serde(default)]
    read_only_root_filesystem: bool,
    run_as_user: Option<u32>,
    #[serde(default)]
    capabilities: Capabilities,
    seccomp_profile: Option<Profile>,
    app_armor_profile: Option<Profile>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Capabilities {
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    add: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VolumeMount {
    name: String,
    mount_path: String,
    #[serde(default)]
    read_only: bool,
    mount_propagation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Volume {
    name: String,
    host_path: HostPath,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostPath {
    path: String,
    #[serde(rename = "type", default)]
    kind: String,
}

/// What `podman run` is given for the pod's one container.
#[derive(Debug, PartialEq)]
pub struct PodRun {
    /// (test(1) operator, path): kubelet's hostPath type checks, made before the run.
    pub checks: Vec<(&'static str, String)>,
    pub options: Vec<String>,
    pub args: Vec<String>,
    /// `podman stop -t`: the pod's termination grace period.
    pub grace: u64,
}

/// The DaemonSet's pod in `text` (the manifest's YAML documents).
pub fn from_manifest(text: &str) -> Result<PodRun> {
    let mut pods = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let o = Object::deserialize(doc).context(MANIFEST)?;
        if o.kind == "DaemonSet" {
            pods.push(o.spec.context("a DaemonSet without spec")?.template.spec);
        }
    }
    let [pod] = &pods[..] else {
        bail!("{MANIFEST}: {} DaemonSets, not one", pods.len());
    };
    translate(pod)
}

fn translate(pod: &PodSpec) -> Result<PodRun> {
    let [c] = &pod.containers[..] else {
        bail!("{} containers in the pod, not one", pod.containers.len());
    };
    ensure!(!pod.host_network, "hostNetwork is not translated");
    let sc = &c.security_context;
    ensure!(!sc.privileged, "a privileged pod is not what is tested");
    let mut o: Vec<String> = Vec::new();
    if pod.host_pid {
        o.extend(["--pid".into(), "host".into()]);
    }
    // A pod has a network namespace of its own; the guest has no pod network.
    o.extend(["--network".into(), "none".into()]);
    if !sc.allow_privilege_escalation {
        o.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    if sc.read_only_root_filesystem {
        // Kubernetes mounts no tmpfs of its own over a read-only root; podman would.
        o.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    if let Some(uid) = sc.run_as_user {
        o.extend(["--user".into(), uid.to_string()]);
    }
    for cap in &sc.capabilities.drop {
        o.extend(["--cap-drop".into(), cap_name(cap)]);
    }
    for cap in &sc.capabilities.add {
        o.extend(["--cap-add".into(), cap_name(cap)]);
    }
    for (what, p) in [
        ("seccomp", &sc.seccomp_profile),
        ("apparmor", &sc.app_armor_profile),
    ] {
        match p.as_ref().map(|p| p.kind.as_str()) {
            None | Some("RuntimeDefault") => {}
            Some("Unconfined") => o.extend(["--security-opt".into(), format!("{what}=unconfined")]),
            Some(other) => bail!("{what} profile type {other:?} is not translated"),
        }
    }
    if let Some(m) = &c.resources.limits.memory {
        o.extend(["--memory".into(), memory(m)?]);
    }
    let mut checks = Vec::new();
    for m in &c.volume_mounts {
        let v = pod
            .volumes
            .iter()
            .find(|v| v.name == m.name)
            .with_context(|| format!("volumeMount {:?} has no volume", m.name))?;
        let test = match v.host_path.kind.as_str() {
            "" => None,
            "Directory" => Some("-d"),
            "Socket" => Some("-S"),
            "File" => Some("-f"),
            other => bail!("hostPath type {other:?} is not translated"),
        };
        if let Some(t) = test {
            checks.push((t, v.host_path.path.clone()));
        }
        // CRI's default propagation is private.
        let propagation = match m.mount_propagation.as_deref() {
            None | Some("None") => "rprivate",
            Some("HostToContainer") => "rslave",
            Some(other) => bail!("mountPropagation {other:?} is not translated"),
        };
        let ro = if m.read_only { "ro," } else { "" };
        o.extend([
            "-v".into(),
            format!("{}:{}:{ro}{propagation}", v.host_path.path, m.mount_path),
        ]);
    }
    Ok(PodRun {
        checks,
        options: o,
        args: c.args.clone(),
        grace: pod.termination_grace_period_seconds.unwrap_or(30),
    })
}

fn cap_name(k8s: &str) -> String {
    if k8s == "ALL" {
        "all".into()
    } else {
        format!("CAP_{k8s}")
    }
}

/// A Kubernetes memory quantity in binary units as podman's `--memory`.
fn memory(q: &str) -> Result<String> {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let suffix = match unit {
        "Ki" => "k",
        "Mi" => "m",
        "Gi" => "g",
        _ => bail!("memory limit {q:?}: only Ki, Mi and Gi are translated"),
    };
    ensure!(!n.is_empty(), "memory limit {q:?}");
    Ok(format!("{n}{suffix}"))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl PodRun {
    /// `run_pod NAME IMAGE [ARGS...]`: kubelet's hostPath checks (a failed one prints its line and
    /// returns 1, as kubelet refuses to start the pod), then the container, detached, with
    /// the manifest's arguments and then ARGS.
    /// `POD_GRACE` is the pod's termination grace period.
    pub fn shell(&self) -> String {
        let mut s = format!(
            "# Generated from {MANIFEST} by xtask's pod.rs.\nPOD_GRACE={}\nrun_pod() {{\n",
            self.grace
        );
        for (t, p) in &self.checks {
            s += &format!(
                "    [ {t} {p} ] || {{ echo \"hostPath type check failed: \"{p}; return 1; }}\n",
                p = quote(p)
            );
        }
        s += "    name=$1 image=$2\n    shift 2\n    podman run -d --name \"$name\"";
        for o in &self.options {
            s += &format!(" {}", quote(o));
        }
        s += " \"$image\"";
        for a in &self.args {
            s += &format!(" {}", quote(a));
        }
        s += " \"$@\"\n}\n";
        s
    }
}

/// Writes the shipped manifest's `run_pod` to `dest`.
pub fn write_shell(root: &Path, dest: &Path) -> Result<()> {
    let text = std::fs::read_to_string(root.join(MANIFEST)).context(MANIFEST)?;
    let run = from_manifest(&text)?;
    std::fs::write(dest, run.shell()).with_context(|| dest.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PodRun {
        let text = std::fs::read_to_string(crate::cmd::workspace_root().join(MANIFEST)).unwrap();
        from_manifest(&text).unwrap()
    }

    /// The pod as shipped: capabilities only, no host paths that may be missing.
    #[test]
    fn the_shipped_pod() {
        let p = shipped();
        let joined = p.options.join(" ");
        for want in [
            "--pid host",
            "--security-opt no-new-privileges",
            "--read-only --read-only-tmpfs=false",
            "--user 0",
            "--cap-drop all",
            "--cap-add CAP_BPF",
            "--cap-add CAP_PERFMON",
            "--cap-add CAP_SYS_RESOURCE",
            "--security-opt seccomp=unconfined",
            "--memory 256m",
            "-v /var/lib:/var/lib:ro,rslave",
            "-v /run:/run:ro,rslave",
        ] {
            assert!(joined.contains(want), "{want:?} not in {joined}");
        }
        assert!(!joined.contains("privileged"), "{joined}");
        // Every hostPath is checked, so none is created on a host that lacks it.
        let mounts = p.options.iter().filter(|o| *o == "-v").count();
        assert_eq!(p.checks.len(), mounts);
        assert_eq!(p.args[..2], ["--metrics", "0.0.0.0:29435"]);
        assert_eq!(p.grace, 30);
    }

    fn pod(extra_container: &str, volumes: &str) -> String {
        format!(
            "kind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: i\n        securityContext:\n          runAsUser: 0\n{extra_container}{volumes}"
        )
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = from_manifest(&pod("        stdin: true\n", ""))
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("stdin"), "{e:#}");
        let v = "        volumeMounts:\n        - name: x\n          mountPath: /x\n      volumes:\n      - name: x\n        emptyDir: {}\n";
        assert!(from_manifest(&pod("", v)).is_err());
    }

    #[test]
    fn mounts_types_and_quoting() {
        let v = "        volumeMounts:\n        - name: s\n          mountPath: /s\n          readOnly: true\n        args: [\"it's\"]\n      volumes:\n      - name: s\n        hostPath:\n          path: /run/x.sock\n          type: Socket\n";
        let p = from_manifest(&pod("", v)).unwrap();
        assert_eq!(p.checks, [("-S", "/run/x.sock".to_string())]);
        assert!(p
            .options
            .join(" ")
            .contains("-v /run/x.sock:/s:ro,rprivate"));
        let sh = p.shell();
        assert!(sh.contains("[ -S '/run/x.sock' ] || {"), "{sh}");
        assert!(sh.contains(r#" "$image" 'it'\''s' "$@""#), "{sh}");
        let bad = v.replace("Socket", "FileOrCreate");
        assert!(from_manifest(&pod("", &bad)).is_err());
    }

    #[test]
    fn memory_units() {
        assert_eq!(memory("256Mi").unwrap(), "256m");
        assert_eq!(memory("1Gi").unwrap(), "1g");
        assert!(memory("256M").is_err());
        assert!(memory("Mi").is_err());
    }
}
