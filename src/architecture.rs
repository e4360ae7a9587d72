//! Checks of the crate's shape that the compiler does not make: the pure folders do no I/O,
//! and no two modules import each other (directly or round a longer loop). Both read the
//! sources, the way a reviewer would; test code (after `#[cfg(test)]`, and `tests.rs` files)
//! is left out, since tests may read sample files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Folders and files that must stay pure: no runtime, no database, no files, no network.
const PURE: &[&str] = &[
    "message",
    "attach",
    "extract",
    "campaign",
    "notify",
    "schedule/plan.rs",
    "send/limit.rs",
    "pipeline/decide.rs",
    "web/auth.rs",
    "web/board.rs",
    "web/chart.rs",
    "web/desk.rs",
];

/// What a pure module may not name.
const IMPURE: &[&str] = &[
    "tokio",
    "sqlx",
    "std::fs",
    "std::net",
    "crate::store",
    "crate::imap",
    "crate::send::smtp",
    "Utc::now",
    "Local::now",
    "SystemTime::now",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The non-test code of a file, without comment lines.
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `src/send/limit.rs` → `send::limit`, `src/send/mod.rs` → `send`.
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => None,
        _ => Some(parts.join("::")),
    }
}

#[test]
fn pure_folders_do_no_io() {
    let mut checked = 0;
    let mut found = Vec::new();
    for entry in PURE {
        let path = src().join(entry);
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.exists() {
            files.push(path);
        }
        for f in files {
            checked += 1;
            let code = code(&f);
            for word in IMPURE {
                if code.contains(word) {
                    found.push(format!("{}: {word}", f.display()));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} pure files found");
    assert!(
        found.is_empty(),
        "pure modules doing I/O:\n{}",
        found.join("\n")
    );
}

/// `store/` is the only place that speaks SQL: no other module names sqlx or reaches the
/// store's connection pool (the wiring in `main` has none of its own).
#[test]
fn only_the_store_speaks_sql() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let store = src().join("store");
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !f.starts_with(&store)) {
        let code = code(f);
        for word in ["sqlx", ".pool", "SqliteConnection"] {
            if code.contains(word) && !f.ends_with("architecture.rs") {
                found.push(format!("{}: {word}", f.display()));
            }
        }
    }
    assert!(files.len() >= 60, "only {} files", files.len());
    assert!(
        found.is_empty(),
        "SQL outside store/:\n{}",
        found.join("\n")
    );
}

#[test]
fn module_imports_form_no_cycle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .filter_map(|f| module_of(&f).map(|m| (m, f)))
        .collect();
    // The longest known module a `crate::a::b::Item` path lies in.
    let resolve = |path: &str| {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains_key(m))
    };
    // A folder and its children are one unit: a parent declaring its children and children
    // using their parent's types is not a cycle.
    let related = |a: &str, b: &str| {
        a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
    };
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (m, f) in &modules {
        let code = code(f);
        for (i, _) in code.match_indices("crate::") {
            let path: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if let Some(target) = resolve(path.trim_end_matches(':'))
                && !related(m, &target)
            {
                edges.entry(m.as_str()).or_default().insert(target);
            }
        }
    }
    assert!(
        edges.len() >= 20,
        "only {} modules import others",
        edges.len()
    );
    // Depth-first search for a back edge; report the loop it closes.
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<&str, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        loops: &mut Vec<String>,
    ) {
        state.insert(m, 1);
        stack.push(m);
        for next in edges.get(m).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].to_vec();
                    cycle.push(next);
                    loops.push(cycle.join(" → "));
                }
                Some(_) => {}
                None => visit(next, edges, state, stack, loops),
            }
        }
        stack.pop();
        state.insert(m, 2);
    }
    let mut state = BTreeMap::new();
    let mut loops = Vec::new();
    for m in edges.keys() {
        if !state.contains_key(m) {
            visit(m, &edges, &mut state, &mut Vec::new(), &mut loops);
        }
    }
    assert!(
        loops.is_empty(),
        "modules importing each other:\n{}",
        loops.join("\n")
    );
}
