//! The architecture, held to the code: every layer imports only the layers
//! below it, no module imports another that imports it back (no import
//! circles), bollard is spoken only in `engine/`, the engine is reached in
//! one place, and commands stay thin. Reads the source; no Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the top-level modules its non-test code may
/// use. The order is the layering of the README's architecture map.
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("progress", &[]),
    ("cli", &["progress"]),
    ("model", &["error"]),
    ("engine", &["error", "model"]),
    ("image", &["engine", "error", "model", "progress"]),
    ("settings", &["cli", "error", "image", "model"]),
    ("lock", &["error", "progress"]),
    ("interrupt", &["error"]),
    (
        "plan",
        &["engine", "error", "image", "interrupt", "model", "progress"],
    ),
    (
        "ops",
        &[
            "cli", "engine", "error", "image", "lock", "model", "plan", "progress", "settings",
        ],
    ),
    (
        "commands",
        &[
            "cli",
            "engine",
            "error",
            "image",
            "interrupt",
            "lock",
            "model",
            "ops",
            "plan",
            "progress",
            "settings",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every Rust file under src/ with its module path ("ops::up", "plan").
fn modules() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, prefix: &[String], out: &mut Vec<(String, PathBuf)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("src is readable")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(stem);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut p = prefix.to_vec();
                if stem != "mod" && !(prefix.is_empty() && (stem == "lib" || stem == "main")) {
                    p.push(stem);
                }
                out.push((p.join("::"), path));
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &[], &mut out);
    out
}

/// A file's code: without comments (doc comments may name any module) and
/// without its unit tests (they may reach across layers), which sit in a
/// `#[cfg(test)]` module at the end of the file.
fn code_of(path: &Path) -> String {
    strip(&std::fs::read_to_string(path).expect("a source file"))
}

/// [`code_of`] for a text.
fn strip(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim_start()).unwrap_or("");
            let is_module =
                next.starts_with("mod ") || (next.starts_with("pub") && next.contains(" mod "));
            if is_module {
                break;
            }
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The paths a file's code names from the crate root: `crate::a::b`,
/// each item of `crate::{a, b::{c, d}}`, and `super::x` resolved against the
/// file's own module path.
fn paths(code: &str, module: &str) -> Vec<String> {
    // The module `super` names: the parent of this file's module (for a
    // mod.rs the module is the directory itself).
    let own: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let parent = if own.is_empty() {
        String::new()
    } else {
        own[..own.len() - 1].join("::")
    };
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            // Only whole words: `super::` inside `mysuper::` is not one.
            let before = rest[..i].chars().last();
            let tail = &rest[i + prefix.len()..];
            rest = tail;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let join = |p: &str| {
                if base.is_empty() {
                    p.to_string()
                } else {
                    format!("{base}::{p}")
                }
            };
            if let Some(group) = tail.strip_prefix('{') {
                for item in group_items(group) {
                    out.push(join(&item));
                }
            } else {
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                out.push(join(tail[..end].trim_end_matches(':')));
            }
        }
    }
    out
}

/// The items of a brace group (`a, b::{c, d}, e}` …) as flat paths.
fn group_items(group: &str) -> Vec<String> {
    let mut depth = 0usize;
    let mut end = group.len();
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                end = i;
                break;
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    let inner = &group[..end];
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(inner[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(inner[start..].trim().to_string());
    items
        .into_iter()
        .filter(|i| !i.is_empty() && i != "self")
        .flat_map(|item| match item.split_once("::{") {
            Some((head, sub)) => group_items(sub)
                .into_iter()
                .map(|s| format!("{head}::{s}"))
                .collect::<Vec<_>>(),
            None => vec![item
                .split(" as ")
                .next()
                .unwrap_or(&item)
                .trim()
                .to_string()],
        })
        .collect()
}

/// The crate modules a file's code refers to (a path `a::b::Item` →
/// "a::b" when a module of that name exists, else "a").
fn references(code: &str, module: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for path in paths(code, module) {
        let mut current = String::new();
        for seg in path.split("::").filter(|s| !s.is_empty()) {
            let candidate = if current.is_empty() {
                seg.to_string()
            } else {
                format!("{current}::{seg}")
            };
            if known.contains(&candidate) {
                current = candidate;
            } else {
                break;
            }
        }
        if !current.is_empty() {
            found.insert(current);
        }
    }
    found
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mods = modules();
    let known: BTreeSet<String> = mods.iter().map(|(m, _)| m.clone()).collect();
    let mut wrong = Vec::new();
    for (module, path) in &mods {
        if module.is_empty() {
            continue; // lib.rs and main.rs
        }
        let layer = top(module);
        let may = allowed
            .get(layer)
            .unwrap_or_else(|| panic!("{layer} is in no layer of tests/layers.rs"));
        for used in references(&code_of(path), module, &known) {
            let used_layer = top(&used);
            if used_layer != layer && !may.contains(&used_layer) {
                wrong.push(format!("{module} uses {used}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mods = modules();
    let known: BTreeSet<String> = mods.iter().map(|(m, _)| m.clone()).collect();
    let graph: BTreeMap<String, BTreeSet<String>> = mods
        .iter()
        .filter(|(m, _)| !m.is_empty())
        .map(|(m, path)| {
            let mut uses = references(&code_of(path), m, &known);
            uses.remove(m);
            (m.clone(), uses)
        })
        .collect();
    // Depth-first search for a back edge; the cycle found is printed.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(node, &graph, &mut state, &mut stack) {
                panic!("import circle: {}", cycle.join(" → "));
            }
        }
    }
}

#[test]
fn only_the_engine_speaks_bollard_and_connects() {
    for (module, path) in modules() {
        if top(&module) == "engine" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        assert!(
            !text.contains("bollard"),
            "{} mentions bollard",
            path.display()
        );
        assert!(
            !text.contains("DockerEngine::connect"),
            "{} connects to the engine itself (use engine::Connection)",
            path.display()
        );
    }
}

#[test]
fn commands_stay_thin() {
    for (module, path) in modules() {
        if top(&module) != "commands" {
            continue;
        }
        let lines = std::fs::read_to_string(&path)
            .expect("a source file")
            .lines()
            .count();
        assert!(
            lines <= 300,
            "{} has {lines} lines: move the work into ops/",
            path.display()
        );
    }
}

#[test]
fn the_checker_sees_real_references() {
    // The checks above would pass vacuously if references() found nothing.
    let mods = modules();
    let known: BTreeSet<String> = mods.iter().map(|(m, _)| m.clone()).collect();
    let up = mods
        .iter()
        .find(|(m, _)| m == "ops::up")
        .map(|(_, p)| p.clone())
        .expect("ops/up.rs");
    let uses = references(&code_of(&up), "ops::up", &known);
    for expected in ["plan::reconcile", "settings", "model::spec", "engine"] {
        assert!(uses.contains(expected), "{expected} not seen in {uses:?}");
    }

    // Groups, `super::`, comments and a `pub(crate)` test module.
    let code = "use crate::{model::{labels, spec::Role}, engine as e};\n\
                // crate::commands::cluster is only named in a comment\n\
                fn f() { super::settle::settle(); }\n\
                #[cfg(test)]\n\
                pub(crate) mod tests { use crate::ops::up; }\n";
    let uses = references(&strip(code), "plan::desired", &known);
    let expected: BTreeSet<String> = ["model::labels", "model::spec", "engine", "plan::settle"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(uses, expected);
}
