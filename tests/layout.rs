//! The shape of the code: no module of a library crate imports a module that imports it back.
//!
//! Each `src/` tree is read as text. A file is a module (`a.rs` and `a/mod.rs` are `a`,
//! `a/b.rs` is `a::b`); every path that starts with `crate::`, `super::` or `self::` (in `use`
//! lines and in code) is resolved to the module it names. Two modules depend on each other when
//! one's file names the other; a module using its own children or its ancestors (a parent's
//! items, `use super::*` in tests) is not counted, so the check is between siblings: the
//! crate's top-level modules, then the children of each folder. A re-export at the crate root
//! (`pub use store::SqliteStore`) counts as the module it comes from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The library crates whose modules must form no cycle.
const CRATES: &[&str] = &[
    "shared/core",
    "shared/aws",
    "shared/embedded",
    "shared/http",
    "shared/lambda",
];

type ModPath = Vec<String>;

fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifiers of a path that starts at `rest` (after `crate::`): `a::b::{c, d}` gives
/// `[a, b]` and the names in the braces, each as its own path.
fn paths_after(rest: &str) -> Vec<Vec<String>> {
    let mut segments = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut current = String::new();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            current.push(c);
        } else if c == ':' && chars.peek().is_some_and(|(_, n)| *n == ':') {
            chars.next();
            segments.push(std::mem::take(&mut current));
        } else if c == '{' && current.is_empty() {
            // A group: each top-level name in it extends the path so far.
            let inner = &rest[i + 1..];
            let end = inner.find('}').unwrap_or(inner.len());
            return inner[..end]
                .split(',')
                .filter_map(|item| {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    (!name.is_empty()).then(|| {
                        let mut p = segments.clone();
                        p.push(name);
                        p
                    })
                })
                .collect();
        } else {
            break;
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    vec![segments]
}

/// Every module path a file names, resolved from the file's own module `here`.
fn references(text: &str, here: &ModPath) -> Vec<ModPath> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (prefix, base) in [
            ("crate::", Vec::new()),
            ("super::", here[..here.len().saturating_sub(1)].to_vec()),
            ("self::", here.clone()),
        ] {
            let mut from = 0;
            while let Some(at) = code[from..].find(prefix) {
                let start = from + at;
                from = start + prefix.len();
                let before = code[..start].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let mut rest = &code[from..];
                let mut base = base.clone();
                while let Some(r) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = r;
                }
                for tail in paths_after(rest) {
                    let mut path = base.clone();
                    path.extend(tail);
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Re-exports at the crate root: a name to the module it comes from.
fn root_reexports(lib: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        for path in paths_after(rest.trim_start_matches("crate::")) {
            if path.len() >= 2 {
                out.insert(path.last().unwrap().clone(), path[0].clone());
            }
        }
    }
    out
}

/// The module a path names, among `modules` (the longest known prefix).
fn resolve(path: &ModPath, modules: &BTreeSet<ModPath>, root: &HashMap<String, String>) -> ModPath {
    if let [name] = path.as_slice()
        && let Some(module) = root.get(name)
    {
        return vec![module.clone()];
    }
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// The sibling edges of a crate: (from, to) module paths sharing a parent.
fn edges(crate_dir: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let src = crate_dir.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(&src, f)).collect();
    let root = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for file in &files {
        let here = module_of(&src, file);
        let text = std::fs::read_to_string(file).expect("readable source");
        for path in references(&text, &here) {
            let target = resolve(&path, &modules, &root);
            let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == here.len() || common == target.len() {
                continue; // its own child, itself, or an ancestor
            }
            graph
                .entry(here[..=common].to_vec())
                .or_default()
                .insert(target[..=common].to_vec());
        }
    }
    graph
}

/// One cycle of the graph, if there is any, as the modules along it.
fn find_cycle(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    fn visit(
        node: &ModPath,
        graph: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        state: &mut HashMap<ModPath, bool>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        match state.get(node) {
            Some(true) => {
                let start = stack.iter().position(|n| n == node).unwrap();
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            Some(false) => return None,
            None => {}
        }
        state.insert(node.clone(), true);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node.clone(), false);
        None
    }
    let mut state = HashMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn show(cycle: &[ModPath]) -> String {
    cycle
        .iter()
        .map(|m| m.join("::"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

#[test]
fn no_library_module_imports_a_module_that_imports_it_back() {
    for krate in CRATES {
        let graph = edges(&workspace().join(krate));
        // A crate of several modules that import each other must show edges: else the
        // check read nothing.
        let single_file = ["shared/lambda"].contains(krate);
        assert!(
            single_file || !graph.is_empty(),
            "{krate}: no module edges found"
        );
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: modules import each other: {}", show(&cycle));
        }
    }
}

#[test]
fn the_check_finds_a_cycle_between_siblings_and_through_a_root_reexport() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use b::Thing;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod x;\nmod y;\nuse crate::Thing;\n").unwrap();
    std::fs::write(src.join("a/x.rs"), "use super::y::{Y, Z};\n").unwrap();
    std::fs::write(src.join("a/y.rs"), "fn f() { super::super::a::x::g() }\n").unwrap();
    std::fs::write(src.join("b.rs"), "// crate::a is only named in a comment\n").unwrap();
    let graph = edges(dir.path());
    let cycle = find_cycle(&graph).expect("x and y import each other");
    assert!(show(&cycle).contains("a::x") && show(&cycle).contains("a::y"));

    std::fs::write(src.join("a/y.rs"), "").unwrap();
    assert_eq!(find_cycle(&edges(dir.path())), None);
    std::fs::write(src.join("b.rs"), "fn f() { let _ = crate::a::thing(); }\n").unwrap();
    let cycle = find_cycle(&edges(dir.path())).expect("a and b through the re-export");
    assert_eq!(show(&cycle), "a -> b -> a");
}
