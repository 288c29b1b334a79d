//! Library errors speak of settings by their library names (`batch`, `max_map_drop`); only the command line names
//! flags. Checked on calls (a bad setting is an `Error::Setting` naming it, printed by `ticket` as its flag) and on
//! the source: no string literal below src/cli/ names a flag, except the command lines the library runs and the
//! hints that name a command, each listed here with its reason.
mod common;

use common::{rust_files, tempdir, ticket};
use std::path::Path;
use ticket::cli::render_error;
use ticket::data::synth::SynthOptions;
use ticket::eval::gate::GateSettings;
use ticket::Error;

/// Literals that name a flag and stay: (file, a piece of the literal, why).
const ALLOWED: &[(&str, &str, &str)] = &[
    ("src/runtime/env.rs", "run `ticket setup --torch`", "a hint naming the command that makes the environment"),
    ("src/lottery/report/runs.rs", "finish it with ticket imp --resume", "a hint naming the command that finishes the run"),
    ("src/lottery/report/mod.rs", "see ticket sweep --status", "a hint naming the command that shows the sweep"),
    ("src/lottery/report/markdown.rs", "(ticket imp --early-bird F1,F2,…)", "report text naming the command that makes the masks"),
    ("src/lottery/sweep/slurm.rs", "#SBATCH --", "the directives of the batch script the sweep submits"),
    ("src/lottery/sweep/slurm.rs", "sweep --task", "the command line of the batch script the sweep submits"),
    ("src/lottery/sweep/slurm.rs", "--slurm needs a Slurm client", "the environment's failure (exit 3), naming the other executor"),
    ("src/lottery/sweep/spec.rs", "--{key}", "a task's `ticket imp` command line: built from a cell, read back (settings_of_argv)"),
    ("src/lottery/sweep/spec.rs", "raise it with --max-tasks", "a spec's messages are strings in its terms (parse_spec)"),
    ("src/lottery/sweep/spec.rs", "(see ticket {COMMAND} --help)", "a hint naming the command whose options a spec sets"),
    ("src/lottery/imp/options.rs", "for --{key}", "a sweep cell names its settings by `ticket imp`'s options"),
    ("src/lottery/imp/options.rs", "--{}", "a sweep cell names its settings by `ticket imp`'s options (as_option)"),
    ("src/lottery/sweep/study.rs", "tools/export_models.py --synth W", "a hint naming the tool that exports the models"),
    ("src/train/worker.rs", "--device cuda: the training venv", "the environment's failure (exit 3): no CUDA for the device asked"),
    ("src/bench/mod.rs", "or pass --torch-python none", "the environment's failure (exit 3): the ways to a torch baseline"),
];

/// Backticked words in library literals that are not settings: (word, why).
const NOT_SETTINGS: &[(&str, &str)] = &[("model", "a sweep cell's key for the initial weights, in an input error")];

/// String literals of Rust source with their line numbers: comments, char literals and the `#[cfg(test)]`
/// module at the end of a file left out.
fn literals(text: &str) -> Vec<(usize, String)> {
    let text = text.split("#[cfg(test)]").next().unwrap();
    let b = text.as_bytes();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i + 1 < b.len() && b[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2 + b[i + 2..].iter().position(|&c| c == b'\'').unwrap_or(0);
            }
            b'\'' if text[i + 1..].chars().nth(1) == Some('\'') => {
                i += 1 + text[i + 1..].chars().next().unwrap().len_utf8();
            }
            b'"' => {
                let start = line;
                let mut s = Vec::new();
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        s.push(b[i]);
                        i += 1;
                    }
                    line += (b[i] == b'\n') as usize;
                    s.push(b[i]);
                    i += 1;
                }
                out.push((start, String::from_utf8(s).unwrap()));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether `lit` names a flag: `--` at the start of a word, then a lowercase letter or a `{` placeholder.
fn names_flag(lit: &str) -> bool {
    lit.match_indices("--").any(|(at, _)| {
        !lit[..at].ends_with(|c: char| c.is_alphanumeric() || c == '-')
            && lit[at + 2..].starts_with(|c: char| c.is_ascii_lowercase() || c == '{')
    })
}

/// A literal that is one flag and nothing else is an argument of a command line the library runs (a sweep
/// task, the transfer study's training, the benchmarks' torch baseline, pip).
fn lone_flag(lit: &str) -> bool {
    lit.strip_prefix("--").is_some_and(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_lowercase() || c == b'-'))
}

/// The literals of `file` (relative to the crate) that name a flag and are not allowed to.
fn flags_named(file: &str, text: &str) -> Vec<String> {
    literals(text)
        .into_iter()
        .filter(|(_, lit)| names_flag(lit) && !lone_flag(lit))
        .filter(|(_, lit)| !ALLOWED.iter().any(|(f, piece, _)| *f == file && lit.contains(piece)))
        .map(|(line, lit)| format!("{file}:{line}: \"{lit}\""))
        .collect()
}

/// The library's files: src/ without src/cli/ and main.rs, as (path relative to the crate, text).
fn library_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .filter(|rel| !rel.starts_with("src/cli/") && rel != "src/main.rs")
        .map(|rel| (rel.clone(), std::fs::read_to_string(root.join(&rel)).unwrap()))
        .collect()
}

#[test]
fn no_library_literal_names_a_flag_but_the_listed_ones() {
    let files = library_files();
    let bad: Vec<String> = files.iter().flat_map(|(f, text)| flags_named(f, text)).collect();
    assert!(bad.is_empty(), "library literals naming a flag (name the setting in backticks, Error::setting):\n{}", bad.join("\n"));
    // Every entry of the list is still needed.
    for (file, piece, why) in ALLOWED {
        let used = files.iter().any(|(f, text)| f == file && literals(text).iter().any(|(_, l)| l.contains(piece)));
        assert!(used, "ALLOWED lists {file}: {piece:?} ({why}), which is no longer there");
    }
}

#[test]
fn the_flag_check_reads_what_it_claims() {
    let sample = "// a comment: --batch\nlet c = '\"';\nErr(Error::Input(format!(\"--batch {} is outside\", b)))\n\
                  cmd.arg(\"--resume\");\nlet h = \"run `ticket setup --torch`\";\nlet d = \"x--y\";\n\
                  #[cfg(test)]\nmod tests { const T: &str = \"--steps 0\"; }\n";
    assert_eq!(flags_named("src/x.rs", sample), ["src/x.rs:3: \"--batch {} is outside\"", "src/x.rs:5: \"run `ticket setup --torch`\""]);
    assert_eq!(flags_named("src/runtime/env.rs", sample), ["src/runtime/env.rs:3: \"--batch {} is outside\""]);
    assert!(names_flag("for --{key}") && !names_flag("a -- b") && !names_flag("x--y"));
}

#[test]
fn every_setting_a_library_literal_names_prints_as_a_flag() {
    let mut unknown = Vec::new();
    for (file, text) in library_files() {
        for (line, lit) in literals(&text) {
            for word in lit.split('`').skip(1).step_by(2) {
                let setting = !word.is_empty() && word.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
                if !setting || NOT_SETTINGS.iter().any(|(w, _)| *w == word) {
                    continue;
                }
                let printed = render_error(&Error::setting("x", format!("`{word}`")));
                if printed != format!("--{}", word.replace('_', "-")) {
                    unknown.push(format!("{file}:{line}: `{word}` prints as {printed}"));
                }
            }
        }
    }
    assert!(unknown.is_empty(), "settings the command line does not know (add them to cli::render_flag):\n{}", unknown.join("\n"));
}

#[test]
fn a_bad_setting_names_the_setting_and_the_command_line_its_flag() {
    let gate = GateSettings { max_map_drop: Some(1.5), images: Some(".".into()), ..GateSettings::new("c.onnx".into(), "d.onnx".into()) };
    let e = gate.check().unwrap_err();
    assert!(matches!(e, Error::Setting { setting: "max_map_drop", .. }), "{e:?}");
    assert_eq!(e.to_string(), "`max_map_drop` 1.5: give a number in [0, 1]");
    assert_eq!(e.exit_code(), 2);
    assert_eq!(render_error(&e), "--max-map-drop 1.5: give a number in [0, 1]");

    let e = SynthOptions { images: 0, seed: 0, size: 64 }.validate().unwrap_err();
    assert!(matches!(e, Error::Setting { setting: "images", .. }) && !e.to_string().contains("--"), "{e:?}");

    // The binary prints the flag, on stderr and in --json's error.
    let dir = tempdir();
    let out = ticket(&[&"data", &"synth", &"--out", &dir.path().join("d"), &"--images", &"0", &"--classify", &"--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "error: --images must be at least 1");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"], "--images must be at least 1");
}
