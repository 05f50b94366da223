//! The user-space crate's imports go one way: this reads every `crate::` path of each
//! module (tests aside) and fails on any cycle among modules, naming it. It reads
//! source text only; `lint` runs it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use anyhow::{bail, Context, Result};

/// Module path (`output::render`) -> source, for every file under `src` but the crate
/// roots, which only declare modules.
fn modules(src: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(src) else {
                continue;
            };
            let Some(rel) = rel.to_str().and_then(|r| r.strip_suffix(".rs")) else {
                continue;
            };
            if rel == "lib" || rel == "main" {
                continue;
            }
            let name = rel.strip_suffix("/mod").unwrap_or(rel).replace('/', "::");
            out.insert(name, fs::read_to_string(&path)?);
        }
    }
    Ok(out)
}

/// The `crate::` paths `src` names outside its tests, braces expanded.
fn crate_paths(src: &str) -> Vec<String> {
    let src = src.split("#[cfg(test)]").next().unwrap_or(src);
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let used = expand("", after, &mut out);
        rest = &after[used..];
    }
    out
}

/// Reads one path (`a::b`, `a::{b, c::{d}}`) at the start of `text` under `prefix` into
/// `out`; returns the bytes it took.
fn expand(prefix: &str, text: &str, out: &mut Vec<String>) -> usize {
    let ident_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let path = text[..ident_end].trim_end_matches(':');
    let full = match (prefix.is_empty(), path.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => path.to_string(),
        (false, false) => format!("{prefix}::{path}"),
    };
    if !text[ident_end..].starts_with('{') {
        if !full.is_empty() {
            out.push(full);
        }
        return ident_end;
    }
    // A group: split its items at top-level commas and read each.
    let mut depth = 0;
    let mut item_start = ident_end + 1;
    for (i, c) in text.char_indices().skip(ident_end) {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                let item = text[item_start..i].trim();
                let item = match item.contains('{') {
                    true => item,
                    false => item.split(" as ").next().unwrap_or(item),
                };
                if !item.is_empty() && item != "self" {
                    expand(&full, item, out);
                } else if item == "self" {
                    out.push(full.clone());
                }
                item_start = i + 1;
                if c == '}' {
                    return i + 1;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// Module -> the other modules it imports from.
fn graph(mods: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<&str>> {
    let resolve = |path: &str| -> Option<&str> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find_map(|p| mods.get_key_value(&p).map(|(k, _)| k.as_str()))
    };
    mods.iter()
        .map(|(name, src)| {
            let deps = crate_paths(src)
                .iter()
                .filter_map(|p| resolve(p))
                .filter(|d| d != name)
                .collect();
            (name.as_str(), deps)
        })
        .collect()
}

/// Groups of modules that import each other, directly or through others.
fn cycles<'a>(g: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<BTreeSet<&'a str>> {
    let reach = |from: &'a str| -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(m) = todo.pop() {
            for &d in g.get(m).into_iter().flatten() {
                if seen.insert(d) {
                    todo.push(d);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<&str>> = g.keys().map(|&m| (m, reach(m))).collect();
    let mut out: Vec<BTreeSet<&str>> = Vec::new();
    for (&m, r) in &reaches {
        if !r.contains(m) || out.iter().any(|c| c.contains(m)) {
            continue;
        }
        out.push(
            r.iter()
                .copied()
                .filter(|o| reaches[o].contains(m))
                .collect(),
        );
    }
    out
}

/// Fails, naming each cycle, when modules under `src` import each other.
pub fn check(src: &Path) -> Result<()> {
    let mods = modules(src)?;
    let found = cycles(&graph(&mods));
    if found.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = found
        .iter()
        .map(|c| c.iter().copied().collect::<Vec<_>>().join(" <-> "))
        .collect();
    bail!("import cycles in {}: {}", src.display(), names.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_groups() {
        let src = "use crate::{a::{B, c::D}, e, f::{self, G as H}};\nfn x() { crate::k::f(); }\n\
                   #[cfg(test)]\nmod tests { use crate::z; }";
        assert_eq!(
            crate_paths(src),
            ["a::B", "a::c::D", "e", "f", "f::G", "k::f"]
        );
    }

    #[test]
    fn a_cycle_through_a_third_module_is_found() {
        let mods: BTreeMap<String, String> = [
            ("a", "use crate::b::X;"),
            ("b", "use crate::{c::Y, d};"),
            ("c", "fn f() { crate::a::g() }"),
            ("d", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let found = cycles(&graph(&mods));
        assert_eq!(found, [BTreeSet::from(["a", "b", "c"])]);
        let mods: BTreeMap<String, String> = [("a", "use crate::b::X;"), ("b", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(cycles(&graph(&mods)).is_empty());
    }

    /// The crate as it is has none.
    #[test]
    fn user_space_has_no_import_cycle() {
        check(&crate::workspace_root().join("copyup-trace/src")).unwrap();
    }
}
