//! What `--metrics` is asked for: the labels its copy-up series can carry
//! (`--metrics-labels`), their defaults and the cap on series. Serving them is
//! `metrics`'s.

use std::net::SocketAddr;

use crate::events::decode::{CopyUp, OpDone};

/// A label the copy-up series can carry: its name and where its value comes from. Adding
/// one (`image`, `namespace`, `pod` once the copy-up carries them) is one line here.
pub struct Label {
    pub name: &'static str,
    pub(super) value: fn(&CopyUp) -> Option<&str>,
    /// Its value for an operation's latency, when an operation record has it.
    pub(super) op_value: Option<fn(&OpDone) -> &'static str>,
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every label `--metrics-labels` can choose. None of them is a path, a pid or anything
/// else whose number of values grows with the host's age.
pub const LABELS: &[Label] = &[
    Label {
        name: "trigger",
        value: |c| Some(c.trigger.name()),
        op_value: Some(|d| d.trigger.name()),
    },
    Label {
        name: "kind",
        value: |c| Some(c.kind.name()),
        op_value: None,
    },
    // The runtime's name for the container; its id where the runtime gives none.
    Label {
        name: "container",
        value: |c| {
            let k = c.container.as_deref()?;
            Some(k.name.as_deref().unwrap_or(&k.id))
        },
        op_value: None,
    },
    Label {
        name: "image",
        value: |c| c.container.as_deref()?.image.as_deref(),
        op_value: None,
    },
    Label {
        name: "namespace",
        value: |c| c.container.as_deref()?.namespace.as_deref(),
        op_value: None,
    },
    Label {
        name: "pod",
        value: |c| c.container.as_deref()?.pod.as_deref(),
        op_value: None,
    },
];

/// A Kubernetes pod's containers are named inside their pod: namespace and pod keep
/// the series of two pods apart (empty, so absent to Prometheus, off Kubernetes).
pub const DEFAULT_LABELS: &str = "trigger,kind,namespace,pod,container";
pub const DEFAULT_MAX_SERIES: usize = 2000;
/// The value of every label of the series that takes what is past the cap.
pub const OTHER: &str = "_other_";
/// Label values longer than this are cut (they come from the traced system).
pub const MAX_LABEL_LEN: usize = 128;

/// The labels `--metrics-labels` chose, in the order given.
#[derive(Debug, Clone)]
pub struct Labels(pub Vec<&'static Label>);

/// `--metrics-labels trigger,kind,container`: known names, each once.
pub fn parse_labels(s: &str) -> Result<Labels, String> {
    let mut chosen: Vec<&'static Label> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let label = LABELS.iter().find(|l| l.name == name).ok_or_else(|| {
            let known: Vec<&str> = LABELS.iter().map(|l| l.name).collect();
            format!("unknown label {name:?} (known: {})", known.join(", "))
        })?;
        if chosen.iter().any(|l| l.name == name) {
            return Err(format!("label {name:?} given twice"));
        }
        chosen.push(label);
    }
    Ok(Labels(chosen))
}

/// What `--metrics` was asked for.
#[derive(Debug, Clone)]
pub struct MetricsOpts {
    pub addr: SocketAddr,
    pub labels: Labels,
    /// Label sets of the copy-up series kept apart; later ones fold into `_other_`.
    pub max_series: usize,
    /// How long a gone container's series stay, to be scraped once more.
    pub expire_after: std::time::Duration,
}
