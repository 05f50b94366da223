//! Host-side half of the guest test matrix: the guest script assembled from its parts,
//! the saved artifacts parsed (`Artifacts`, `Run`) and the helpers the checks share. The
//! checks themselves, one `fn` each, live in one module per family (`copyup.rs`, ...).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, ensure, Context, Result};
use copyup_trace_common::kver;
use serde_json::Value;

use crate::progs;

/// Artifacts by name, from `@@FILE name` ... `@@EOF` blocks.
pub fn parse_artifacts(results: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in results.lines() {
        if let Some(name) = line.strip_prefix("@@FILE ") {
            current = Some((name.trim().to_string(), Vec::new()));
        } else if line == "@@EOF" {
            if let Some((name, lines)) = current.take() {
                let mut text = lines.join("\n");
                // emit() adds one newline after the content.
                while text.ends_with('\n') {
                    text.pop();
                }
                out.insert(name, text);
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    out
}

pub struct Artifacts {
    pub kernel: String,
    files: BTreeMap<String, String>,
}

/// One traced run's JSON output.
struct Run {
    events: Vec<Value>,
    /// The latency records (`"type":"op"`) of the calls that copied up.
    ops: Vec<Value>,
    summary: Value,
    rc: i32,
}

impl Artifacts {
    /// Our programs and links (kprobe or fentry, as `guest-ops bpf-objects` lists them in
    /// `PREFIX.progs_during` and `PREFIX.progs_after`, counted by id) were there while
    /// the tool traced, and none is left after it ended (`after` says how). Returns what
    /// was there while tracing.
    fn programs_detached(&self, prefix: &str, after: &str) -> Result<progs::Listed> {
        let during = progs::listed(self.get(&format!("{prefix}.progs_during"))?)?;
        ensure!(
            !during.progs.is_empty(),
            "{prefix}: none of our programs loaded while tracing: the check would prove nothing"
        );
        self.programs_left(prefix, after)?;
        Ok(during)
    }

    /// None of our programs or links is listed in `PREFIX.progs_after`.
    fn programs_left(&self, prefix: &str, after: &str) -> Result<()> {
        let left = progs::listed(self.get(&format!("{prefix}.progs_after"))?)?;
        ensure!(
            left.is_empty(),
            "{prefix}: {left} of ours still there after {after}"
        );
        Ok(())
    }

    pub fn new(kernel: &str, results: &str) -> Artifacts {
        Artifacts {
            kernel: kernel.to_string(),
            files: parse_artifacts(results),
        }
    }

    /// The artifacts of a scenario run again with names prefixed by `prefix`
    /// (`fentry.single.out`), under their plain names, so that the same checks judge
    /// them.
    fn prefixed(&self, prefix: &str) -> Artifacts {
        Artifacts {
            kernel: self.kernel.clone(),
            files: self
                .files
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Result<&str> {
        self.files
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("guest produced no artifact {name}"))
    }

    /// A run's exit status; an error where the guest found it hanging (`stop_tool`,
    /// `fetch` in guest/scenarios/lib.sh), with what it was doing.
    fn rc(&self, name: &str) -> Result<i32> {
        if let Some(hung) = self.files.get(&format!("{name}.hung")) {
            anyhow::ensure!(
                hung.trim().is_empty(),
                "{name} did not answer or end:\n{hung}"
            );
        }
        let t = self.get(&format!("{name}.rc"))?;
        t.trim()
            .parse()
            .with_context(|| format!("{name}.rc = {t:?}"))
    }

    fn run(&self, name: &str) -> Result<Run> {
        let rc = self.rc(name)?;
        let out = self.get(&format!("{name}.out"))?;
        let mut events = Vec::new();
        let mut ops = Vec::new();
        let mut summary = None;
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{name}: not JSON: {line:?}"))?;
            match v["type"].as_str() {
                Some("copy_up") => events.push(v),
                Some("summary") => summary = Some(v),
                Some("op") => ops.push(v),
                other => bail!("{name}: unknown record type {other:?}"),
            }
        }
        let summary = summary.ok_or_else(|| {
            anyhow!(
                "{name}: no summary record (rc {rc}); stderr: {}",
                self.get(&format!("{name}.err")).unwrap_or("")
            )
        })?;
        ensure!(
            summary["lost"] == 0,
            "{name}: lost events: {}",
            summary["lost"]
        );
        for e in &events {
            ensure!(e["ret"] == 0, "{name}: copy-up failed: {e}");
        }
        Ok(Run {
            events,
            ops,
            summary,
            rc,
        })
    }

    fn upper(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .get(&format!("{name}.upper"))?
            .lines()
            .map(|l| l.trim_start_matches('.').to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("<not a string>")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(u64::MAX)
}

/// What a copy-up record can miss when the kernel skips one of our program runs on its
/// path (another of ours was running on that CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// The record itself: a run of `ovl_copy_up_one`'s programs.
    Record,
    /// Its cause (trigger, syscall): a run of a syscall's or operation's entry program.
    Cause,
    /// Its bytes: a run of the data copy's programs.
    Bytes,
    /// The `op` latency record of the call that caused it: any run of that call's
    /// programs, entry or return, or of `ovl_copy_up_end`'s, without which the copy-up
    /// reads as a wait for another thread's and does not count to its call.
    Op,
}

/// Skipped runs (the summary's `skipped_by`) of the programs whose skipped run can make a
/// copy-up record miss `what`: each record missing it needs one of these.
fn skipped_runs_of(run: &Run, what: Missing) -> u64 {
    use copyup_trace_common::hooks::{self, FuncHook};
    let calls = || {
        std::iter::once(&hooks::FCHOWNAT)
            .chain(hooks::FUNCS.iter().filter(|h| h.ret == Some(hooks::OP_RET)))
    };
    let all = |h: &FuncHook| -> Vec<&'static str> {
        [Some(h.entry), h.ret, Some(h.fentry), h.fexit]
            .into_iter()
            .flatten()
            .collect()
    };
    let programs: Vec<&str> = match what {
        Missing::Record => all(&hooks::COPY_UP_ONE),
        Missing::Cause => calls().flat_map(|h| [h.entry, h.fentry]).collect(),
        Missing::Bytes => [hooks::COPY_UP_FILE, hooks::COPY_UP_DATA]
            .iter()
            .flat_map(all)
            .collect(),
        Missing::Op => calls()
            .chain(std::iter::once(&hooks::COPY_UP_END))
            .flat_map(all)
            .chain([hooks::CHOWN_EXIT.program])
            .collect(),
    };
    let by = &run.summary["skipped_by"];
    let mut names: Vec<&str> = programs;
    names.sort_unstable();
    names.dedup();
    names.iter().map(|p| by[*p].as_u64().unwrap_or(0)).sum()
}

/// (path, kind, bytes) of each event, in the order they happened.
fn objects(run: &Run) -> Vec<(String, String, u64)> {
    run.events
        .iter()
        .map(|e| {
            (
                s(&e["path"]).to_string(),
                s(&e["kind"]).to_string(),
                u(&e["bytes"]),
            )
        })
        .collect()
}

fn expect_objects(run: &Run, want: &[(&str, &str, u64)]) -> Result<()> {
    let got = objects(run);
    let want: Vec<(String, String, u64)> = want
        .iter()
        .map(|(p, k, b)| (p.to_string(), k.to_string(), *b))
        .collect();
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    Ok(())
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Every latency is positive, the data copy fits inside the copy-up, and the copy-up
/// fits inside the command's wall time.
fn check_latencies(run: &Run) -> Result<()> {
    let command_ns = u(&run.summary["command_ns"]);
    for e in &run.events {
        let (copy, data) = (u(&e["copy_ns"]), u(&e["data_ns"]));
        ensure!(copy > 0, "copy_ns not positive: {e}");
        ensure!(data <= copy, "data_ns {data} > copy_ns {copy}");
        if u(&e["bytes"]) > 0 {
            ensure!(data > 0, "data copied in zero time: {e}");
        }
        ensure!(
            copy < command_ns,
            "copy_ns {copy} >= command wall time {command_ns}"
        );
    }
    Ok(())
}

/// Whether the guest kernel's release (`6.12.118+deb13-amd64`) is at least `v`.
fn release_at_least(kernel: &str, v: kver::Version) -> bool {
    kver::at_least(kernel, v)
}

fn one_line_error(a: &Artifacts, name: &str, rc: i32, needle: &str) -> Result<()> {
    let got_rc = a.rc(name)?;
    let err = a.get(&format!("{name}.err"))?;
    ensure!(
        got_rc == rc,
        "{name}: exit {got_rc}, want {rc}; stderr {err:?}"
    );
    ensure!(
        err.lines().count() == 1,
        "{name}: stderr is not one line: {err:?}"
    );
    ensure!(err.starts_with("copyup-trace: "), "{name}: {err:?}");
    ensure!(err.contains(needle), "{name}: {err:?} lacks {needle:?}");
    ensure!(!err.contains("panicked"), "{name}: {err:?}");
    Ok(())
}

/// A named check of one kernel's artifacts; its name is the `name ... ok` line's.
pub type Check = (&'static str, fn(&Artifacts) -> Result<()>);

mod check;
mod copyup;
mod errors;
mod faults;
mod fleet;
mod layers;
mod nested;
mod output;
mod probes;
mod scoping;
mod triggers;
pub mod userland;

/// Ties each family's checks (`NAME.rs`, its `CHECKS`) to its guest part
/// (`guest/scenarios/NAME.sh`).
macro_rules! families {
    ($($family:ident),* $(,)?) => {
        /// The script the guest runs in one boot: the helpers, then every family's
        /// scenarios in the order given.
        pub const SCRIPT: &str = concat!(
            include_str!("../../guest/scenarios/lib.sh"),
            include_str!("../../guest/scenarios/shared.sh"),
            $(include_str!(concat!("../../guest/scenarios/", stringify!($family), ".sh")),)*
            "exit 0\n",
        );

        /// Each family: its name, guest part and checks.
        const FAMILIES: &[(&str, &str, &[Check])] = &[$((
            stringify!($family),
            include_str!(concat!("../../guest/scenarios/", stringify!($family), ".sh")),
            $family::CHECKS,
        )),*];
    };
}

/// Scenarios more than one family runs (`probes` runs the others' again).
const SHARED: &str = include_str!("../../guest/scenarios/shared.sh");

families!(errors, copyup, scoping, triggers, output, fleet, faults, nested, check, probes, layers);

/// Every check, family by family.
pub fn checks() -> impl Iterator<Item = &'static Check> {
    FAMILIES.iter().flat_map(|f| f.2.iter())
}

/// The names of the families, in the order they run.
pub fn family_names() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().map(|f| f.0)
}

/// The guest script and the checks of only the families named (all when none is), in
/// their usual order; an unknown name is an error that lists the known ones.
pub fn selected(names: &[String]) -> Result<(String, Vec<&'static Check>)> {
    if names.is_empty() {
        return Ok((SCRIPT.to_string(), checks().collect()));
    }
    if let Some(bad) = names
        .iter()
        .find(|n| !family_names().any(|f| f == n.as_str()))
    {
        bail!(
            "unknown scenario family {bad:?}; known: {}",
            family_names().collect::<Vec<_>>().join(", ")
        );
    }
    let chosen: Vec<_> = FAMILIES
        .iter()
        .filter(|f| names.iter().any(|n| n == f.0))
        .collect();
    let mut script = include_str!("../../guest/scenarios/lib.sh").to_string();
    script.push_str(SHARED);
    for f in &chosen {
        script.push_str(f.1);
    }
    script.push_str("exit 0\n");
    Ok((script, chosen.iter().flat_map(|f| f.2.iter()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `sc_NAME` a family calls is defined where every selection finds it: in the
    /// shared part or in the family itself, never only in another family.
    #[test]
    fn every_family_runs_alone() {
        let defined_in = |text: &str, name: &str| text.contains(&format!("\n{name}() {{"));
        for (family, text, _) in FAMILIES {
            let calls = text.lines().map(str::trim).filter(|l| {
                l.starts_with("sc_") && l.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
            });
            for name in calls {
                assert!(
                    defined_in(SHARED, name) || defined_in(text, name),
                    "family {family} calls {name}, defined in neither it nor shared.sh"
                );
            }
        }
        assert!(defined_in(SHARED, "sc_thr"));
        let (alone, _) = selected(&["probes".to_string()]).unwrap();
        assert!(alone.contains("\nsc_thr() {"));
    }

    /// One definition per shell function across the whole script: a family's copy would
    /// silently replace another's for every family after it.
    #[test]
    fn each_shell_function_is_defined_once() {
        let lib = include_str!("../../guest/scenarios/lib.sh");
        let parts = [lib, SHARED]
            .into_iter()
            .chain(FAMILIES.iter().map(|f| f.1));
        let mut seen = std::collections::BTreeMap::new();
        for text in parts {
            for name in text
                .lines()
                .filter_map(|l| l.split_once("() {").map(|d| d.0))
            {
                if name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                    *seen.entry(name).or_insert(0) += 1;
                }
            }
        }
        let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "defined more than once: {twice:?}");
        assert!(seen.contains_key("mkf") && seen.contains_key("sc_teardown"));
    }

    #[test]
    fn artifacts_are_split() {
        let text = "noise\n@@FILE a.out\nline1\nline2\n\n@@EOF\n@@FILE a.rc\n0\n\n@@EOF\n";
        let a = parse_artifacts(text);
        assert_eq!(a["a.out"], "line1\nline2");
        assert_eq!(a["a.rc"], "0");
        assert_eq!(a.len(), 2);
    }

    /// A run the guest found hanging fails on its exit status, whatever that is.
    #[test]
    fn a_hung_run_fails_its_status() {
        let ok = "@@FILE m.rc\n0\n@@EOF\n@@FILE m.hung\n\n@@EOF\n";
        assert_eq!(Artifacts::new("k", ok).rc("m").unwrap(), 0);
        let hung = "@@FILE m.rc\n137\n@@EOF\n@@FILE m.hung\nstill running\n@@EOF\n";
        let err = Artifacts::new("k", hung).rc("m").unwrap_err().to_string();
        assert!(
            err.contains("did not answer or end") && err.contains("still running"),
            "{err}"
        );
    }

    /// Each kind of gap in a record is covered only by skipped runs of programs on its
    /// path, not by the host-wide sum.
    #[test]
    fn skipped_runs_by_what_they_cost() {
        let run = Run {
            events: Vec::new(),
            ops: Vec::new(),
            summary: serde_json::json!({"skipped_runs": 10, "skipped_by": {
                "fe_copy_up_one": 1, "fx_copy_up_one": 2, "fe_do_fchownat": 3,
                "fe_copy_up_data": 4, "sched_process_exit": 5, "op_ret": 6, "chown_exit": 7,
            }}),
            rc: 0,
        };
        assert_eq!(skipped_runs_of(&run, Missing::Record), 3);
        assert_eq!(skipped_runs_of(&run, Missing::Cause), 3);
        assert_eq!(skipped_runs_of(&run, Missing::Bytes), 4);
        assert_eq!(skipped_runs_of(&run, Missing::Op), 3 + 6 + 7);
    }

    #[test]
    fn leftover_checks_need_ours_while_tracing() {
        let arts = |during: &str, after: &str| {
            Artifacts::new(
                "6.12",
                &format!(
                    "@@FILE k.progs_during\n{during}\n@@EOF\n@@FILE k.progs_after\n{after}\n@@EOF\n"
                ),
            )
        };
        let ours = "prog 3 hid_tail_call\nprog 41 ovl_copy_up_one\nlink 7 41\n";
        let seen = arts(ours, "prog 3 hid_tail_call\n")
            .programs_detached("k", "SIGINT")
            .unwrap();
        assert_eq!(seen.links.len(), 1);
        // Nothing of ours while tracing: nothing proven.
        let e = arts("prog 3 hid_tail_call\n", "")
            .programs_detached("k", "SIGINT")
            .unwrap_err();
        assert!(e.to_string().contains("none of our programs"), "{e}");
        // One program of ours left, under another id than while tracing.
        let e = arts(ours, "prog 42 ovl_copy_up_one\n")
            .programs_detached("k", "SIGINT")
            .unwrap_err();
        assert!(e.to_string().contains("1 programs (ids {42})"), "{e}");
        assert!(arts(ours, ours).programs_left("k", "SIGINT").is_err());
        assert!(Artifacts::new("6.12", "")
            .programs_left("k", "SIGINT")
            .is_err());
    }

    #[test]
    fn families_select_their_part_and_checks() {
        let (all, every) = selected(&[]).unwrap();
        assert_eq!(all, SCRIPT);
        assert_eq!(every.len(), checks().count());
        let (script, some) = selected(&["copyup".into(), "errors".into()]).unwrap();
        // In the usual order, whatever order they were named in.
        let (errors, copyup) = (FAMILIES[0], FAMILIES[1]);
        assert!(script.ends_with(&format!("{}{}exit 0\n", errors.1, copyup.1)));
        assert_eq!(some.len(), errors.2.len() + copyup.2.len());
        let e = selected(&["nope".into()]).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("layers"), "{e}");
    }

    #[test]
    fn one_script_every_check_named_once() {
        assert!(SCRIPT.starts_with("# Guest-side half"));
        assert!(SCRIPT.ends_with("\nexit 0\n"));
        let mut names: Vec<&str> = checks().map(|c| c.0).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a check name is used twice");
    }
}
