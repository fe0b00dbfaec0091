//! Tidy checks that keep the code readable from `lib.rs` down: file and function sizes,
//! module docs, no swallowed encoding errors, and imports that only ever point downhill
//! (no cycle between the crate's top-level modules, and none between the server's
//! session and the command families it dispatches to).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FILE_LINES_MAX: usize = 600;
const FN_LINES_MAX: usize = 100;

/// Functions that are data tables, not logic: exempt from the length limit.
const DATA_TABLES: &[&str] = &["build_table"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read src dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn crate_sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("../resp/src"), &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).expect("read source"))).collect()
}

/// The line with string and char literals and `//` comments blanked, so braces inside
/// them are not counted.
fn code_only(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal ('{', '\n'); a lifetime ('a) has no closing quote nearby.
            '\'' if matches!(chars.clone().nth(1), Some('\'')) || chars.peek() == Some(&'\\') => {
                let mut n = 0;
                for d in chars.by_ref() {
                    n += 1;
                    if d == '\'' && n > 1 {
                        break;
                    }
                }
                out.push_str("' '");
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// (name, first line, length in lines) of every `fn` with a body.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = text.lines().map(code_only).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(pos) = t.find("fn ") else { continue };
        let prefix = &t[..pos];
        let is_decl = prefix
            .split_whitespace()
            .all(|w| matches!(w, "pub" | "async" | "const" | "unsafe" | "extern") || w.starts_with("pub("));
        if !is_decl {
            continue;
        }
        let name: String = t[pos + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let mut depth = 0i32;
        let mut opened = false;
        'scan: for (j, l) in lines.iter().enumerate().skip(i) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened => break 'scan,
                    _ => {}
                }
                if opened && depth == 0 {
                    found.push((name.clone(), i + 1, j - i + 1));
                    break 'scan;
                }
            }
        }
    }
    found
}

/// A path relative to the workspace, for messages.
fn rel(p: &Path) -> String {
    let text = p.display().to_string();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    text.strip_prefix(&root).map_or(text.clone(), |r| format!("keepbit{r}")).replace("keepbit/../", "")
}

/// No source file grows past the size where it starts mixing nouns.
#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = crate_sources()
        .iter()
        .filter(|(_, t)| t.lines().count() > FILE_LINES_MAX)
        .map(|(p, t)| format!("{} ({} lines)", rel(p), t.lines().count()))
        .collect();
    assert!(long.is_empty(), "files over {FILE_LINES_MAX} lines: {long:#?}");
}

/// No function (outside data tables) is over 100 lines.
#[test]
fn no_function_is_over_100_lines() {
    let mut long = Vec::new();
    for (p, t) in crate_sources() {
        for (name, line, len) in functions(&t) {
            if len > FN_LINES_MAX && !DATA_TABLES.contains(&name.as_str()) {
                long.push(format!("{}:{line} fn {name} ({len} lines)", rel(&p)));
            }
        }
    }
    assert!(long.is_empty(), "functions over {FN_LINES_MAX} lines: {long:#?}");
}

/// The scanner itself finds functions and their lengths, braces in strings aside.
#[test]
fn the_function_scanner_counts_bodies() {
    let text = "pub fn a() {\n    let s = \"}{\";\n    let c = '{';\n}\nfn b<'a>(x: &'a str) -> &'a str {\n    x\n}\nfn decl();\n";
    assert_eq!(functions(text), vec![("a".to_string(), 1, 4), ("b".to_string(), 5, 3)]);
}

/// Every module says what it is for.
#[test]
fn every_module_has_a_module_doc() {
    let missing: Vec<String> =
        crate_sources().iter().filter(|(_, t)| !t.trim_start().starts_with("//!")).map(|(p, _)| rel(p)).collect();
    assert!(missing.is_empty(), "files without a //! module doc: {missing:#?}");
}

/// An encoding failure is never turned into an empty payload that a peer or the log
/// would then store or send as if it were data.
#[test]
fn no_encoding_error_is_swallowed() {
    let mut found = Vec::new();
    for (p, t) in crate_sources() {
        for (i, line) in t.lines().enumerate() {
            let encodes = ["to_stdvec", "encode(", "to_snapshot", "serialize"].iter().any(|w| line.contains(w));
            if encodes && line.contains("unwrap_or_default()") {
                found.push(format!("{}:{}: {}", rel(&p), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "encoding errors swallowed: {found:#?}");
}

/// `crate::<module>` references of each top-level module of the keepbit crate.
fn top_level_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in files {
        let rel = p.strip_prefix(&src).expect("under src");
        let top = rel.iter().next().and_then(|c| c.to_str()).unwrap_or_default().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let to = edges.entry(top.clone()).or_default();
        for part in text.split("crate::").skip(1) {
            let target: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !target.is_empty() && target != top {
                to.insert(target);
            }
        }
    }
    edges
}

/// A cycle in `edges`, if any (depth-first search).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

/// The top-level modules import each other downhill only: server → node → raft →
/// machine → cmd → store (and the leaves: error, reply, config, clock, glob).
#[test]
fn top_level_modules_have_no_import_cycle() {
    let edges = top_level_imports();
    assert!(edges.contains_key("server") && edges.contains_key("raft"), "{edges:?}");
    assert_eq!(find_cycle(&edges), None, "import graph: {edges:#?}");
    for (low, high) in [("store", "cmd"), ("cmd", "machine"), ("machine", "raft"), ("raft", "node"), ("node", "server")]
    {
        assert!(!edges[low].contains(high), "{low} must not import {high}");
    }
}

/// The cycle finder finds cycles.
#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&edges), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

/// The session dispatches to admin and replication; they never reach back into it.
#[test]
fn server_command_families_do_not_import_the_session() {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
    let mut files = Vec::new();
    sources(&server.join("admin"), &mut files);
    files.push(server.join("admin.rs"));
    files.push(server.join("replication.rs"));
    for p in files {
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(!text.contains("session::") && !text.contains("Session"), "{} refers to the session", rel(&p));
    }
}
