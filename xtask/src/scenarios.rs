//! Host-side half of the guest test matrix: parses what `guest/scenarios.sh` saved in a
//! guest and checks it against values computed here from the workload's definition.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

pub const SCRIPT: &str = include_str!("../guest/scenarios.sh");

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
    summary: Value,
    rc: i32,
}

impl Artifacts {
    pub fn new(kernel: &str, results: &str) -> Artifacts {
        Artifacts {
            kernel: kernel.to_string(),
            files: parse_artifacts(results),
        }
    }

    fn get(&self, name: &str) -> Result<&str> {
        self.files
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("guest produced no artifact {name}"))
    }

    fn rc(&self, name: &str) -> Result<i32> {
        let t = self.get(&format!("{name}.rc"))?;
        t.trim()
            .parse()
            .with_context(|| format!("{name}.rc = {t:?}"))
    }

    fn run(&self, name: &str) -> Result<Run> {
        let rc = self.rc(name)?;
        let out = self.get(&format!("{name}.out"))?;
        let mut events = Vec::new();
        let mut summary = None;
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{name}: not JSON: {line:?}"))?;
            match v["type"].as_str() {
                Some("copy_up") => events.push(v),
                Some("summary") => summary = Some(v),
                // Latency of the call that copied up; checked where it matters.
                Some("op") => {}
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

pub type Check = (&'static str, fn(&Artifacts) -> Result<()>);

pub const CHECKS: &[Check] = &[
    ("guest runs the expected kernel", |a| {
        let got = a.get("uname")?;
        ensure!(got == format!("kernel {}", a.kernel), "{got:?}");
        Ok(())
    }),
    ("overlay not loaded: clear error", |a| {
        one_line_error(a, "no_overlay", 1, "overlay filesystem is not loaded")
    }),
    ("command not found: exit 127", |a| {
        one_line_error(a, "not_found", 127, "/no/such/command")
    }),
    ("command's exit status is passed on", |a| {
        let rc = a.rc("exit_status")?;
        ensure!(rc == 3, "exit {rc}, want 3");
        Ok(())
    }),
    ("bad flag value: one-line error, exit 2", |a| {
        one_line_error(a, "bad_flag", 2, "lots")
    }),
    ("chown of one 8 MiB file: one 8388608-byte copy-up", |a| {
        let r = a.run("single")?;
        ensure!(r.rc == 0, "exit {}", r.rc);
        expect_objects(&r, &[("/big", "file", 8388608)])?;
        let e = &r.events[0];
        ensure!(s(&e["trigger"]) == "chown", "trigger {}", e["trigger"]);
        ensure!(s(&e["comm"]) == "chown", "comm {}", e["comm"]);
        ensure!(
            s(&e["filename"]) == "/tmp/ovl-single/merged/big",
            "filename {}",
            e["filename"]
        );
        ensure!(u(&r.summary["copy_ups"]) == 1 && u(&r.summary["bytes"]) == 8388608);
        ensure!(
            a.upper("single")? == ["/big"],
            "upper {:?}",
            a.upper("single")?
        );
        check_latencies(&r)
    }),
    ("second chown of a copied-up file: no copy-up", |a| {
        let r = a.run("again")?;
        ensure!(r.rc == 0, "exit {}", r.rc);
        ensure!(r.events.is_empty(), "events {:?}", r.events);
        ensure!(u(&r.summary["copy_ups"]) == 0);
        Ok(())
    }),
    ("chown -hR over a tree: every object, exact bytes", |a| {
        let r = a.run("tree")?;
        ensure!(r.rc == 0, "exit {}", r.rc);
        let want = [
            ("/tree", "dir", 0),
            ("/tree/a.bin", "file", 4096),
            ("/tree/empty", "file", 0),
            ("/tree/link", "symlink", 0),
            ("/tree/sub", "dir", 0),
            ("/tree/sub/b.bin", "file", 123457),
            ("/tree/sub/deep", "dir", 0),
            ("/tree/sub/deep/c.bin", "file", 1048576),
        ];
        let got = sorted(&objects(&r));
        let want_v: Vec<_> = want
            .iter()
            .map(|(p, k, b)| (p.to_string(), k.to_string(), *b))
            .collect();
        ensure!(got == want_v, "copy-ups\n  got  {got:?}\n  want {want_v:?}");
        ensure!(
            s(&r.events[0]["path"]) == "/tree",
            "the directory is copied first"
        );
        ensure!(u(&r.summary["copy_ups"]) == 8);
        ensure!(u(&r.summary["bytes"]) == 4096 + 123457 + 1048576);
        // `chown -h` changes symlinks themselves: lchown(2) for every object.
        for e in &r.events {
            ensure!(s(&e["trigger"]) == "lchown", "trigger {e}");
        }
        let upper = a.upper("tree")?;
        let want_paths: Vec<_> = want.iter().map(|w| w.0.to_string()).collect();
        ensure!(upper == want_paths, "upper layer {upper:?}");
        check_latencies(&r)
    }),
    ("tracefs kprobe oracle agrees on count and lengths", |a| {
        let r = a.run("tree")?;
        let oracle = a.get("tree.oracle")?;
        let ones = oracle.lines().filter(|l| l.contains("one:")).count();
        ensure!(
            ones == r.events.len(),
            "oracle saw {ones} ovl_copy_up_one, tool {}",
            r.events.len()
        );
        let mut lens: Vec<u64> = oracle
            .lines()
            .filter(|l| l.contains("file:"))
            .map(|l| {
                let v = l
                    .split("len=")
                    .nth(1)
                    .ok_or_else(|| anyhow!("no len in {l:?}"))?;
                v.trim()
                    .parse::<u64>()
                    .with_context(|| format!("len in {l:?}"))
            })
            .collect::<Result<_>>()?;
        lens.retain(|&l| l > 0);
        lens.sort();
        let mut bytes: Vec<u64> = r
            .events
            .iter()
            .map(|e| u(&e["bytes"]))
            .filter(|&b| b > 0)
            .collect();
        bytes.sort();
        ensure!(lens == bytes, "oracle lengths {lens:?}, tool {bytes:?}");
        Ok(())
    }),
    ("deep file: ancestors copied up first", |a| {
        let r = a.run("deep")?;
        expect_objects(
            &r,
            &[
                ("/a", "dir", 0),
                ("/a/b", "dir", 0),
                ("/a/b/c", "dir", 0),
                ("/a/b/c/file.txt", "file", 5000),
            ],
        )?;
        for e in &r.events {
            ensure!(
                s(&e["filename"]) == "/tmp/ovl-deep/merged/a/b/c/file.txt",
                "each copy-up names the chown's argument: {e}"
            );
        }
        check_latencies(&r)
    }),
    ("-- COMMAND: only the command's process tree", |a| {
        let r = a.run("scope")?;
        ensure!(r.rc == 0, "exit {}", r.rc);
        expect_objects(&r, &[("/x1", "file", 3), ("/x2", "file", 3)])?;
        let upper = a.upper("scope")?;
        ensure!(
            upper == ["/x1", "/x2", "/y1", "/y2"],
            "the other process did not copy up: {upper:?}"
        );
        Ok(())
    }),
    ("--pid: only that process; SIGINT prints the summary", |a| {
        let r = a.run("pid")?;
        ensure!(r.rc == 0, "exit {} after SIGINT", r.rc);
        let pid: u64 = a.get("pid.pid")?.trim().parse()?;
        expect_objects(&r, &[("/p1", "file", 3), ("/p2", "file", 3)])?;
        for e in &r.events {
            ensure!(u(&e["pid"]) == pid, "pid {} want {pid}", e["pid"]);
        }
        let upper = a.upper("pid")?;
        ensure!(upper == ["/p1", "/p2", "/q1"], "upper {upper:?}");
        Ok(())
    }),
    ("--comm: only tasks with that name", |a| {
        let r = a.run("comm")?;
        expect_objects(&r, &[("/c1", "file", 3)])?;
        ensure!(
            a.upper("comm")? == ["/c1", "/c2"],
            "upper {:?}",
            a.upper("comm")?
        );
        Ok(())
    }),
    ("every trigger named, with exact bytes", |a| {
        let r = a.run("trig")?;
        ensure!(r.rc == 0, "exit {}", r.rc);
        let want = [
            ("/chmod", "chmod", "file", 3000),
            ("/chown", "chown", "file", 3000),
            ("/dcreate", "create", "dir", 0),
            ("/dlink", "link", "dir", 0),
            ("/dlink/a", "link", "file", 4000),
            ("/dmkdir", "mkdir", "dir", 0),
            ("/dmknod", "mknod", "dir", 0),
            ("/drename", "rename", "dir", 0),
            ("/drename/a", "rename", "file", 2000),
            ("/drmdir", "rmdir", "dir", 0),
            ("/dsymlink", "symlink", "dir", 0),
            ("/dunlink", "unlink", "dir", 0),
            ("/fchown", "fchown", "file", 3000),
            ("/lnk", "lchown", "symlink", 0),
            ("/otrunc", "open-trunc", "file", 0),
            ("/owrite", "open-write", "file", 3000),
            ("/rmx", "removexattr", "file", 3000),
            ("/setx", "setxattr", "file", 3000),
            ("/truncate", "truncate", "file", 3000),
            ("/utimes", "utimes", "file", 3000),
        ];
        let mut got: Vec<(String, String, String, u64)> = r
            .events
            .iter()
            .map(|e| {
                (
                    s(&e["path"]).to_string(),
                    s(&e["trigger"]).to_string(),
                    s(&e["kind"]).to_string(),
                    u(&e["bytes"]),
                )
            })
            .collect();
        got.sort();
        let want: Vec<_> = want
            .iter()
            .map(|(p, t, k, b)| (p.to_string(), t.to_string(), k.to_string(), *b))
            .collect();
        let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
        ensure!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:?}\n    unexpected {extra:?}"
        );
        Ok(())
    }),
    ("each call that copied up reports its own latency", |a| {
        let r = a.run("trig")?;
        let out = a.get("trig.out")?;
        let ops: Vec<Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "op")
            .collect();
        for e in &r.events {
            let cause = u(&e["cause_ts_ns"]);
            let op = ops
                .iter()
                .find(|o| o["tid"] == e["tid"] && u(&o["ts_ns"]) == cause)
                .ok_or_else(|| anyhow!("no op record for {e}"))?;
            ensure!(
                op["trigger"] == e["trigger"] || e["trigger"] == "lchown",
                "{op} vs {e}"
            );
            ensure!(
                u(&op["duration_ns"]) >= u(&e["copy_ns"]),
                "call shorter than its copy-up: {op} {e}"
            );
        }
        Ok(())
    }),
    (
        "metacopy=on: metadata-only, then the data on first write",
        |a| {
            let r = a.run("meta")?;
            let got: Vec<_> = r
                .events
                .iter()
                .map(|e| {
                    (
                        s(&e["path"]),
                        s(&e["trigger"]),
                        u(&e["bytes"]),
                        e["metacopy"].as_bool(),
                        u(&e["size"]),
                    )
                })
                .collect();
            let want = vec![
                ("/m", "chown", 0, Some(true), 5000),
                ("/m", "open-write", 5000, Some(false), 5000),
            ];
            ensure!(got == want, "got {got:?}\n    want {want:?}");
            Ok(())
        },
    ),
    ("container id and cgroup; --cgroup keeps only it", |a| {
        let r = a.run("cg")?;
        let cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        expect_objects(&r, &[("/in", "file", 2)])?;
        let e = &r.events[0];
        ensure!(e["container"]["runtime"] == "docker", "{e}");
        ensure!(e["container"]["id"] == cid, "{e}");
        ensure!(
            s(&e["cgroup"]) == format!("/system.slice/docker-{cid}.scope"),
            "{e}"
        );
        ensure!(s(&e["mount"]) == "/tmp/ovl-cg/merged", "{e}");
        ensure!(
            a.upper("cg")? == ["/in", "/out"],
            "upper {:?}",
            a.upper("cg")?
        );
        Ok(())
    }),
    ("--interval, --events, --hist, --by: live views", |a| {
        ensure!(
            a.rc("live")? == 0,
            "exit {}: {}",
            a.rc("live")?,
            a.get("live.err")?
        );
        let out = a.get("live.out")?;
        let intervals = out.lines().filter(|l| l.starts_with("=== ")).count();
        ensure!(
            intervals >= 2,
            "{intervals} interval tables in a 2.4 s run with -i 1:\n{out}"
        );
        for needle in [
            "/f1",
            "/f2",
            "/f3",
            "usecs",
            "trigger = chown",
            "Copy-ups by trigger",
            "Copy-ups by container",
        ] {
            ensure!(out.contains(needle), "output lacks {needle:?}:\n{out}");
        }
        let event_lines = out
            .lines()
            .filter(|l| l.contains(" chown ") && l.contains("/f"))
            .count();
        ensure!(event_lines >= 3, "--events lines:\n{out}");
        ensure!(
            !out.contains('\x1b'),
            "raw escape byte reached the terminal"
        );
        ensure!(
            out.contains("/esc\\x1b[31mred\\nline"),
            "escaped name missing:\n{out}"
        );
        Ok(())
    }),
    ("untrusted names are escaped in JSON", |a| {
        let r = a.run("livejson")?;
        expect_objects(&r, &[("/jsn\\x1b[31mred\\nline", "file", 0)])
    }),
    (
        "--stacks: folded kernel stacks weighted by copy-up time; --flamegraph SVG",
        |a| {
            let r = a.run("stk")?;
            expect_objects(&r, &[("/s1", "file", 7000), ("/s2", "file", 4)])?;
            let folded = a.get("stk.folded")?;
            let mut total = 0u64;
            for line in folded.lines() {
                let (stack, w) = line
                    .rsplit_once(' ')
                    .ok_or_else(|| anyhow!("bad line {line:?}"))?;
                total += w
                    .parse::<u64>()
                    .with_context(|| format!("weight in {line:?}"))?;
                ensure!(stack.starts_with("chown;"), "{line}");
                let k: Vec<&str> = stack.split(';').collect();
                ensure!(
                    k.last() == Some(&"ovl_copy_up_one"),
                    "innermost frame: {line}"
                );
                ensure!(k.contains(&"do_fchownat"), "no do_fchownat frame: {line}");
            }
            let sum: u64 = r.events.iter().map(|e| u(&e["copy_ns"])).sum();
            ensure!(total == sum, "stack weights {total} != copy_ns sum {sum}");
            ensure!(a.get("stk.svghead")?.contains("<svg"), "not an SVG");
            ensure!(
                a.get("stk.svgcount")?.trim() != "0",
                "flame graph lacks ovl_copy_up_one"
            );
            Ok(())
        },
    ),
    ("SIGINT: report printed, probes detached", |a| {
        let n = a.get("pid.kprobes_after")?.trim().to_string();
        ensure!(
            n == "0",
            "{n} overlay kprobes still registered after SIGINT"
        );
        Ok(())
    }),
    (
        "SIGKILL mid-workload: workload unharmed, nothing left attached",
        |a| {
            let during: u32 = a.get("kill.kprobes_during")?.trim().parse()?;
            ensure!(
                during > 0,
                "no kprobes registered while tracing: the check would prove nothing"
            );
            let ours = |text: &str| -> usize {
                text.lines()
                    .filter(|n| {
                        n.starts_with("ovl_copy_up")
                            || n.starts_with("copy_data")
                            || n.starts_with("do_fchownat")
                            || n.starts_with("op_")
                    })
                    .count()
            };
            ensure!(
                ours(a.get("kill.progs_during")?) > 0,
                "our programs not seen while tracing"
            );
            ensure!(
                a.get("kill.rc")?.trim() == "137",
                "tracer exit {}",
                a.get("kill.rc")?
            );
            ensure!(
                a.get("kill.workload_rc")?.trim() == "0",
                "workload exit {}",
                a.get("kill.workload_rc")?
            );
            ensure!(
                a.get("kill.upper_count")?.trim() == "1000",
                "workload copied {} of 1000 files",
                a.get("kill.upper_count")?
            );
            let seen = a
                .get("kill.out")?
                .lines()
                .filter(|l| l.contains("\"copy_up\""))
                .count();
            ensure!(
                seen < 1001,
                "tracer saw all {seen} copy-ups: it was not killed mid-workload"
            );
            let after = a.get("kill.kprobes_after")?.trim().to_string();
            ensure!(after == "0", "{after} overlay kprobes left after SIGKILL");
            let left = ours(a.get("kill.progs_after")?);
            ensure!(
                left == 0,
                "{left} of our BPF programs still loaded after SIGKILL"
            );
            Ok(())
        },
    ),
    (
        "16 threads copying up at once: right tid each, state maps empty",
        |a| {
            let r = a.run("thr")?;
            ensure!(r.rc == 0, "exit {}", r.rc);
            ensure!(r.events.len() == 16, "{} copy-ups, want 16", r.events.len());
            let mut tids = std::collections::BTreeSet::new();
            for line in a.get("thr.err")?.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                ensure!(f.len() == 3 && f[2] == "0", "thread report {line:?}");
                let name = f[1].rsplit('/').next().unwrap_or("");
                let e = r
                    .events
                    .iter()
                    .find(|e| s(&e["path"]).strip_prefix('/') == Some(name))
                    .ok_or_else(|| anyhow!("no copy-up of {name}"))?;
                ensure!(
                    e["tid"].as_u64().map(|t| t.to_string()).as_deref() == Some(f[0]),
                    "{name}: tid {} want {}",
                    e["tid"],
                    f[0]
                );
                tids.insert(f[0].to_string());
            }
            ensure!(tids.len() == 16, "{} distinct tids", tids.len());
            ensure!(
                r.summary["state_entries"] == 0,
                "per-thread state left: {}",
                r.summary["state_entries"]
            );
            ensure!(r.summary["lost"] == 0, "lost: {}", r.summary);
            Ok(())
        },
    ),
    ("table output", |a| {
        ensure!(a.rc("table")? == 0);
        let out = a.get("table.out")?;
        for needle in [
            "2 copy-ups, 300.0 KiB copied",
            "lost events: 0",
            "Copy-ups by file",
            "/etc/big.conf",
            "Copy-ups by process",
            "chown",
        ] {
            ensure!(out.contains(needle), "table lacks {needle:?}:\n{out}");
        }
        Ok(())
    }),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_split() {
        let text = "noise\n@@FILE a.out\nline1\nline2\n\n@@EOF\n@@FILE a.rc\n0\n\n@@EOF\n";
        let a = parse_artifacts(text);
        assert_eq!(a["a.out"], "line1\nline2");
        assert_eq!(a["a.rc"], "0");
        assert_eq!(a.len(), 2);
    }
}
