//! The library's structure, checked: every `crate::` path under src/ against README's layer list (a module imports
//! only modules on a lower line), and every file in src/cli/ against the rule that a command file holds its
//! arguments, a `run` function and rendering — anything another command or a library user needs lives below cli/.
mod common;
use common::rust_files;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ```layers block of README.md: one line a layer, top first, modules separated by commas. Returns the rank of
/// each module (higher = above).
fn layers(readme: &str) -> BTreeMap<String, usize> {
    let block = readme.split("```layers\n").nth(1).expect("README.md has a ```layers block").split("```").next().unwrap();
    let lines: Vec<&str> = block.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut rank = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        for m in line.split(',').map(str::trim) {
            assert!(rank.insert(m.to_string(), lines.len() - i).is_none(), "README's layer list names {m} twice");
        }
    }
    rank
}

/// The top-level module a file under src/ belongs to (`src/detect/nms.rs` → `detect`, `src/fsio.rs` → `fsio`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Source without comments and string/char literals, so that only code is read. Keeps line breaks for line numbers.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && (i == 0 || !is_ident(b[i - 1])) {
            // raw string r"…" / r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c as char);
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + close.len();
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if b.get(i) == Some(&b'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == b'\'' && b.get(i + 2) == Some(&b'\'') {
            out.push_str("' '");
            i += 3;
        } else if c == b'\'' && b.get(i + 1) == Some(&b'\\') {
            let end = b[i + 2..].iter().position(|&x| x == b'\'').map_or(b.len(), |p| i + 2 + p);
            out.push_str("' '");
            i = end + 1;
        } else {
            // Multi-byte UTF-8 is copied byte by byte through the char boundary below.
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every module named by a `crate::` path in `code`, with its line: `crate::a::b`, `use crate::{a, b::c}`.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let b = code.as_bytes();
    let mut from = 0;
    while let Some(p) = code[from..].find("crate::") {
        let at = from + p;
        from = at + 7;
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b'$') {
            continue; // `$crate::` in macros, or an identifier ending in "crate"
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut name = String::new();
            let mut at_start = true;
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        at_start = true;
                        name.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 && at_start {
                    if is_ident(ch as u8) && ch.is_ascii() {
                        name.push(ch);
                    } else if !name.is_empty() {
                        found.push((name.clone(), line));
                        at_start = false;
                    }
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            found.push((name, line));
        }
    }
    found
}

#[test]
fn no_module_imports_a_module_above_it() {
    let rank = layers(&std::fs::read_to_string(root().join("README.md")).unwrap());
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    let mut seen = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        if rel == "src/lib.rs" || rel == "src/main.rs" {
            continue;
        }
        let me = module_of(&src, f);
        let Some(&my_rank) = rank.get(&me) else {
            bad.push(format!("{rel}: module `{me}` is not in README's layer list"));
            continue;
        };
        seen.insert(me.clone());
        for (target, line) in crate_paths(&code_only(&std::fs::read_to_string(f).unwrap())) {
            if target == me || target == "self" || target == "Result" || target == "Error" {
                continue; // `crate::Result`/`crate::Error` are the re-exports of `error`, at the base
            }
            match rank.get(&target) {
                None => bad.push(format!("{rel}:{line}: `crate::{target}` is not in README's layer list")),
                Some(&r) if r >= my_rank => bad.push(format!("{rel}:{line}: `{me}` imports `{target}`, which is not below it")),
                Some(_) => {}
            }
        }
    }
    for m in rank.keys() {
        if !seen.contains(m) && m != "cli" {
            bad.push(format!("README's layer list names `{m}`, which has no file under src/"));
        }
    }
    assert!(bad.is_empty(), "{} layer violations:\n{}", bad.len(), bad.join("\n"));
}

/// One top-level item of a cli file: its kind, name, the derives above it, and its line.
struct Item {
    kind: String,
    name: String,
    derives: String,
    line: usize,
}

fn top_level_items(code: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut derives = String::new();
    let mut depth: i32 = 0;
    let mut in_test = false;
    for (i, raw) in code.lines().enumerate() {
        let line = raw.trim_end();
        if depth == 0 && !line.is_empty() {
            if line.starts_with("#[derive(") {
                derives.push_str(line);
            } else if line.starts_with("#[cfg(test)]") {
                in_test = true;
            } else if !line.starts_with("#[") && !line.starts_with(['}', ')', ']']) {
                let (kind, name) = kind_and_name(line);
                if !in_test {
                    items.push(Item { kind, name, derives: std::mem::take(&mut derives), line: i + 1 });
                }
                in_test = false;
                derives.clear();
            }
        }
        depth += line.matches(['{', '(', '[']).count() as i32 - line.matches(['}', ')', ']']).count() as i32;
    }
    items
}

/// `pub(crate) fn f(…` → ("fn", "f"); `impl Trait for X` → ("impl", "X").
fn kind_and_name(line: &str) -> (String, String) {
    let mut s = line;
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "async ", "unsafe ", "extern \"C\" "] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    let s = s.strip_prefix("const fn ").map_or(s.to_string(), |r| format!("fn {r}"));
    let kind: String = s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    if kind == "impl" {
        return (kind, impl_target(&s));
    }
    let rest = s[kind.len()..].trim_start();
    let name = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (kind, name)
}

/// `impl X`, `impl<'a> X<'a>`, `impl Trait for X` → `X`.
fn impl_target(line: &str) -> String {
    let mut s = line.trim_start_matches("impl");
    if s.starts_with('<') {
        let mut depth = 0;
        let end = s
            .char_indices()
            .find(|&(_, c)| {
                depth += (c == '<') as i32 - (c == '>') as i32;
                depth == 0
            })
            .map_or(0, |(i, _)| i + 1);
        s = &s[end..];
    }
    let s = s.split(" for ").last().unwrap().trim();
    s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

const CLAP_DERIVES: [&str; 4] = ["Parser", "Args", "Subcommand", "ValueEnum"];
const CLI_FN_PREFIXES: [&str; 6] = ["run", "render", "print", "show", "progress", "parse_"];

#[test]
fn cli_files_hold_only_arguments_run_and_rendering() {
    let dir = root().join("src/cli");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    files.sort();
    let parsed: Vec<(String, Vec<Item>)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root()).unwrap().display().to_string();
            (rel, top_level_items(&code_only(&std::fs::read_to_string(f).unwrap())))
        })
        .collect();
    let clap_types: BTreeSet<&str> = parsed
        .iter()
        .flat_map(|(_, items)| items.iter())
        .filter(|it| CLAP_DERIVES.iter().any(|d| it.derives.contains(d)))
        .map(|it| it.name.as_str())
        .collect();
    let mut bad = Vec::new();
    for (rel, items) in &parsed {
        for it in items {
            let ok = match it.kind.as_str() {
                "use" | "mod" => true,
                "struct" | "enum" => clap_types.contains(it.name.as_str()),
                "impl" => clap_types.contains(it.name.as_str()),
                "fn" => CLI_FN_PREFIXES.iter().any(|p| it.name.starts_with(p)),
                _ => false,
            };
            if !ok {
                bad.push(format!("{rel}:{}: {} {}", it.line, it.kind, it.name));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} items in src/cli/ that are not a command's arguments, its run function or rendering (move them below cli/):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_checks_read_what_they_claim() {
    // The readers above, on a sample: a use tree, an inline path, a macro's $crate, comments and strings skipped.
    let code = code_only(
        "use crate::{detect::Hw, data::{self, x}};\n// crate::lottery\nlet s = \"crate::cli\";\nfoo($crate::x);\nlet y = crate::train::f();\n",
    );
    let got: Vec<String> = crate_paths(&code).into_iter().map(|(m, _)| m).collect();
    assert_eq!(got, ["detect", "data", "train"]);
    let items = top_level_items(&code_only(
        "#[derive(Args)]\npub struct A {\n}\nimpl A {\n fn x() {}\n}\npub fn run() {}\nfn helper() {}\npub(crate) const K: u8 = 1;\n#[cfg(test)]\nmod tests {}\n",
    ));
    let got: Vec<(String, String)> = items.into_iter().map(|i| (i.kind, i.name)).collect();
    let want = [("struct", "A"), ("impl", "A"), ("fn", "run"), ("fn", "helper"), ("const", "K")];
    assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let rank = layers("x\n```layers\na\nb, c\n```\n");
    assert_eq!((rank["a"], rank["b"], rank["c"]), (2, 1, 1));
}
