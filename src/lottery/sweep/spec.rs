//! A sweep spec (TOML) and its expansion into tasks. The spec names the command's fixed settings and a grid;
//! every cell of the grid is one task, named by a hash of its non-default settings (open_lth's naming), so the
//! same cell always lands in the same folder and a rerun of the spec finds its finished work.
//!
//! ```toml
//! name = "scope"                  # a label for reports and job names (default: the file's stem)
//! [fixed]                         # options of `ticket imp`, as on its command line (kebab or snake case)
//! model = "models/faster.onnx"    # the positional MODEL; relative paths are relative to the spec's folder
//! coco = "train/annotations.json"
//! val-coco = "val/annotations.json"
//! steps = 1200
//! [grid]                          # every combination of these values is a task
//! scope = ["global", "layer"]
//! sparsity = [0.5, 0.8, 0.9]
//! seed = [1, 2, 3]
//! ```
//! Values are strings, numbers, booleans (a flag is given when true) or arrays (a comma-separated option such
//! as `early-bird = [0.25, 0.5]`; in the grid, each entry is one value, so `modules = [["base"], ["rpn", "fpn"]]`).
//!
//! Settings that vary together, not as a product (a model with its own mask file), are listed as cells; the
//! grid's product is taken with each of them:
//! ```toml
//! [[cells]]
//! model = "det_tt.onnx"
//! masks-from = "det_tt.safetensors"
//! [[cells]]
//! model = "det_pretrained.onnx"
//! sparsity = 0.8
//! ```
use crate::error::{Error, Result};
use crate::fsio::{fnv1a, FNV_OFFSET};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The command every task runs. One for now: the grid cells of the paper's studies are IMP runs.
pub const COMMAND: &str = "imp";

/// Settings a sweep sets itself: the task's folder, resuming, output format.
const RESERVED: [&str; 5] = ["output", "resume", "json", "help", "version"];

/// What the sweep needs to know of the command's options: their names, which take a value or a path, their
/// defaults. The CLI owns the parser, so it answers (the sweep, below the CLI, must not import it); the values
/// of a task are checked by the library ([`crate::lottery::imp::options`]).
pub trait CommandOptions {
    /// The option named `key` (its long name; `model` for the positional), or None when there is none.
    fn option(&self, key: &str) -> Option<OptionInfo>;
}

/// The command's options by name, as its parser lists them.
#[derive(Clone, Debug, Default)]
pub struct OptionTable {
    options: BTreeMap<String, OptionInfo>,
}

impl OptionTable {
    pub fn new(options: impl IntoIterator<Item = (String, OptionInfo)>) -> OptionTable {
        OptionTable { options: options.into_iter().collect() }
    }

    /// The options' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.options.keys().map(String::as_str)
    }
}

impl CommandOptions for OptionTable {
    fn option(&self, key: &str) -> Option<OptionInfo> {
        self.options.get(key).cloned()
    }
}

#[derive(Clone, Debug)]
pub struct OptionInfo {
    /// False for a flag (true/false in the spec).
    pub takes_value: bool,
    /// Relative paths are resolved against the spec's folder.
    pub is_path: bool,
    pub positional: bool,
    /// The default as the command line spells it (several values joined by commas).
    pub default: Option<String>,
}

/// The expanded spec: SWEEP_DIR/sweep.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub command: String,
    /// FNV-1a of the task list: a SWEEP_DIR made from another spec is refused.
    pub spec_hash: String,
    pub tasks: Vec<TaskDef>,
}

/// One cell of the grid: SWEEP_DIR/tasks/HASH/task.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDef {
    /// Its index in the plan: the job array's index.
    pub index: usize,
    /// The folder name: FNV-1a 64 of the command and its non-default settings.
    pub hash: String,
    /// The grid's values for this cell (what tells it from its neighbours), as the command line spells them.
    pub cell: BTreeMap<String, String>,
    /// Every setting that differs from the command's default.
    pub settings: BTreeMap<String, String>,
    /// The command's arguments (after `ticket imp`), without the output folder.
    pub argv: Vec<String>,
}

impl TaskDef {
    pub fn label(&self) -> String {
        if self.cell.is_empty() {
            return "(fixed settings)".into();
        }
        cell_label(&self.cell)
    }

    /// Whether the spec fixes the ORT thread count (else the executor sets it per task).
    pub fn sets_threads(&self) -> bool {
        self.settings.contains_key("threads")
    }
}

/// A cell's values as `key=value` pairs, space separated: how tasks are named in messages and tables.
pub fn cell_label(cell: &BTreeMap<String, String>) -> String {
    cell.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: Option<String>,
    command: Option<String>,
    #[serde(default)]
    fixed: toml::Table,
    #[serde(default)]
    grid: toml::Table,
    #[serde(default)]
    cells: Vec<toml::Table>,
}

/// The most tasks a spec expands to unless the user raises it (`ticket sweep --max-tasks`): each task is a
/// whole IMP run and is checked before anything starts, so a grid of a million cells is a typo, found here
/// before it is expanded, not after hours of checks.
pub const DEFAULT_MAX_TASKS: usize = 1000;

/// Reads and expands a spec file; every task's settings are checked as `ticket imp` checks a new run's, so a bad value
/// fails here, before anything runs or is submitted. A spec of more than `max_tasks` tasks is refused before
/// it is expanded.
pub fn read_spec(path: &Path, opts: &dyn CommandOptions, max_tasks: usize) -> Result<Plan> {
    let text = crate::fsio::read_text_limited(path, 1 << 20)?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "sweep".into());
    let base = std::path::absolute(path).map_err(|e| Error::io(path, e))?.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_spec(&text, &stem, &base, opts, max_tasks).map_err(|m| Error::input(path, m))
}

/// [`read_spec`] on text (a study's generated spec); errors are messages for the caller to place, one line each
/// (a line break quoted from the spec is spelled `\n`).
pub fn parse_spec(
    text: &str,
    default_name: &str,
    base: &Path,
    opts: &dyn CommandOptions,
    max_tasks: usize,
) -> std::result::Result<Plan, String> {
    expand(text, default_name, base, opts, max_tasks).map_err(|m| m.replace('\n', "\\n").replace('\r', "\\r"))
}

fn expand(text: &str, default_name: &str, base: &Path, opts: &dyn CommandOptions, max_tasks: usize) -> std::result::Result<Plan, String> {
    let file: SpecFile = toml::from_str(text).map_err(|e| format!("not a sweep spec: {}", e.message()))?;
    let command = file.command.unwrap_or_else(|| COMMAND.into());
    if command != COMMAND {
        return Err(format!("command `{command}` cannot be swept (only `{COMMAND}`)"));
    }
    let name = file.name.unwrap_or_else(|| default_name.into());
    if !valid_name(&name) {
        return Err(format!("name `{name}`: use letters, digits, - and _ (it names the Slurm job)"));
    }
    let fixed = settings_of(&file.fixed, "fixed", base, opts)?;
    if file.grid.is_empty() && file.cells.is_empty() {
        return Err("the [grid] is empty: a sweep needs at least one setting with values (a single run is ticket imp)".into());
    }
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for (raw, v) in &file.grid {
        let key = normalise(raw);
        let toml::Value::Array(values) = v else {
            return Err(format!("[grid] {raw}: give a list of values (put a single value under [fixed])"));
        };
        if values.is_empty() {
            return Err(format!("[grid] {raw} is an empty list: the grid has no cells"));
        }
        if fixed.contains_key(&key) {
            return Err(format!("{raw} is both in [fixed] and in [grid]"));
        }
        let info = known(&key, opts)?;
        let rendered = values.iter().map(|x| render(&key, &info, x, base)).collect::<std::result::Result<Vec<_>, _>>()?;
        axes.push((key, rendered));
    }
    let mut listed = Vec::new();
    for (i, t) in file.cells.iter().enumerate() {
        if t.is_empty() {
            return Err(format!("[[cells]] entry {} has no settings", i + 1));
        }
        let c = settings_of(t, "cells", base, opts)?;
        if let Some(k) = c.keys().find(|k| fixed.contains_key(*k) || axes.iter().any(|(a, _)| a == *k)) {
            return Err(format!("[[cells]] entry {}: {k} is also in [fixed] or [grid]", i + 1));
        }
        listed.push(c);
    }
    if listed.is_empty() {
        listed.push(BTreeMap::new());
    }
    // Counted before anything is expanded: the product of the axes' lengths overflows long before memory does.
    let count = axes.iter().try_fold(listed.len(), |n, (_, v)| n.checked_mul(v.len()));
    match count {
        Some(n) if n <= max_tasks => {}
        _ => {
            let mut sizes: Vec<String> = axes.iter().map(|(k, v)| format!("{} {k}", v.len())).collect();
            if !file.cells.is_empty() {
                sizes.insert(0, format!("{} cells", listed.len()));
            }
            let n = count.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
            return Err(format!(
                "the spec expands to {n} tasks ({}), more than the limit of {max_tasks}; raise it with --max-tasks if you mean it",
                sizes.join(" × ")
            ));
        }
    }
    let mut tasks = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for cell in listed.iter().flat_map(|l| {
        product(&axes).into_iter().map(move |mut c| {
            c.extend(l.clone());
            c
        })
    }) {
        let mut all = fixed.clone();
        all.extend(cell.clone());
        let index = tasks.len();
        let task = task_of(index, cell, &all, opts)?;
        if let Some(first) = seen.insert(task.hash.clone(), index) {
            return Err(format!("cells {first} and {index} ({}) are the same task once defaults are left out", task.label()));
        }
        tasks.push(task);
    }
    Ok(Plan { name, spec_hash: spec_hash(&command, &tasks), command, tasks })
}

/// A task's folder name: 16 hex digits of FNV-1a over the command and its non-default settings.
fn task_hash(settings: &BTreeMap<String, String>) -> String {
    // The ORT thread count changes where a run executes, not what it computes: it does not name the task.
    let mut h = fnv1a(FNV_OFFSET, COMMAND.as_bytes());
    for (k, v) in settings.iter().filter(|(k, _)| k.as_str() != "threads") {
        h = fnv1a(h, format!("\n{k}={v}").as_bytes());
    }
    format!("{h:016x}")
}

fn spec_hash(command: &str, tasks: &[TaskDef]) -> String {
    let mut h = fnv1a(FNV_OFFSET, command.as_bytes());
    for t in tasks {
        h = fnv1a(h, t.hash.as_bytes());
    }
    format!("{h:016x}")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Plan {
    /// A plan read back from SWEEP_DIR/sweep.json is checked, not trusted: its name (it goes into the sbatch
    /// script), each task's index and folder name (a hash of its settings, so never a path), and the spec hash
    /// over them. Errors are messages for the caller to place.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.command != COMMAND {
            return Err(format!("command `{}` is not one a sweep runs (only `{COMMAND}`)", self.command));
        }
        if !valid_name(&self.name) {
            return Err(format!("name `{}` is not letters, digits, - and _", self.name.escape_debug()));
        }
        if self.tasks.is_empty() {
            return Err("has no tasks".into());
        }
        for (i, t) in self.tasks.iter().enumerate() {
            if t.index != i {
                return Err(format!("task {i} says it is task {}", t.index));
            }
            let want = task_hash(&t.settings);
            if t.hash != want {
                return Err(format!(
                    "task {i}'s folder name `{}` is not the hash of its settings ({want}): the plan was edited",
                    t.hash.escape_debug()
                ));
            }
        }
        if self.spec_hash != spec_hash(&self.command, &self.tasks) {
            return Err(format!("spec hash {} does not match its tasks: the plan was edited", self.spec_hash.escape_debug()));
        }
        Ok(())
    }

    /// [`Plan::check`], and each task's arguments against its settings: the arguments a runner passes to the
    /// command are exactly the task's settings (and defaults), none of the sweep's own options, each option once.
    pub fn check_arguments(&self, opts: &dyn CommandOptions) -> std::result::Result<(), String> {
        self.check()?;
        for t in &self.tasks {
            let given = settings_of_argv(&t.argv, opts).map_err(|e| format!("task {}: {e}", t.index))?;
            if given != t.settings {
                return Err(format!("task {}'s arguments do not match its settings: the plan was edited", t.index));
            }
        }
        Ok(())
    }
}

/// The non-default settings an argument list gives (the inverse of [`task_of`]'s arguments).
fn settings_of_argv(argv: &[String], opts: &dyn CommandOptions) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut all = BTreeMap::new();
    let mut it = argv.iter().peekable();
    if let Some(first) = it.peek().filter(|a| !a.starts_with("--")) {
        all.insert("model".to_string(), (*first).clone());
        it.next();
    }
    while let Some(a) = it.next() {
        let key = a.strip_prefix("--").ok_or_else(|| format!("argument `{}` is not an option", a.escape_debug()))?;
        let info = known(key, opts)?;
        if info.positional {
            return Err(format!("`{key}` is the positional argument, given as an option"));
        }
        let value = if info.takes_value { it.next().ok_or_else(|| format!("--{key} has no value"))?.clone() } else { "true".to_string() };
        if all.insert(key.to_string(), value).is_some() {
            return Err(format!("--{key} is given twice"));
        }
    }
    let mut out = BTreeMap::new();
    for (key, value) in all {
        let info = opts.option(&key).expect("known above");
        let default = if info.takes_value { info.default.clone() } else { Some("false".into()) };
        if default.as_deref() != Some(value.as_str()) {
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// `val_coco` and `val-coco` are one option.
fn normalise(key: &str) -> String {
    key.replace('_', "-")
}

fn known(key: &str, opts: &dyn CommandOptions) -> std::result::Result<OptionInfo, String> {
    if RESERVED.contains(&key) {
        return Err(format!("setting `{key}` is the sweep's own (each task's folder and resumes are managed by ticket sweep)"));
    }
    opts.option(key).ok_or_else(|| format!("unknown setting `{key}`: not an option of ticket {COMMAND} (see ticket {COMMAND} --help)"))
}

fn settings_of(
    t: &toml::Table,
    section: &str,
    base: &Path,
    opts: &dyn CommandOptions,
) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (raw, v) in t {
        let key = normalise(raw);
        let info = known(&key, opts)?;
        let value = render(&key, &info, v, base).map_err(|e| format!("[{section}] {e}"))?;
        if out.insert(key, value).is_some() {
            return Err(format!("[{section}] {raw} is given twice (as kebab and snake case)"));
        }
    }
    Ok(out)
}

/// A value as the command line spells it.
fn render(key: &str, info: &OptionInfo, v: &toml::Value, base: &Path) -> std::result::Result<String, String> {
    let scalar = |x: &toml::Value| -> std::result::Result<String, String> {
        match x {
            toml::Value::String(s) if info.is_path => {
                let p = PathBuf::from(s);
                Ok(if p.is_absolute() { p } else { base.join(p) }.to_string_lossy().into_owned())
            }
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            // Rust prints the shortest string that reads back as the same f64 (0.8 → "0.8").
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(format!("{key}: a {} is not a value of an option", other.type_str())),
        }
    };
    if !info.takes_value {
        return match v {
            toml::Value::Boolean(b) => Ok(b.to_string()),
            _ => Err(format!("{key} is a flag: give true or false")),
        };
    }
    match v {
        toml::Value::Array(items) if !info.positional => {
            Ok(items.iter().map(scalar).collect::<std::result::Result<Vec<_>, _>>()?.join(","))
        }
        other => scalar(other),
    }
}

/// Every combination of the axes' values, the last axis varying fastest.
fn product(axes: &[(String, Vec<String>)]) -> Vec<BTreeMap<String, String>> {
    let mut cells = vec![BTreeMap::new()];
    for (key, values) in axes {
        cells = cells
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(key.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    cells
}

fn task_of(
    index: usize,
    cell: BTreeMap<String, String>,
    all: &BTreeMap<String, String>,
    opts: &dyn CommandOptions,
) -> std::result::Result<TaskDef, String> {
    let mut argv = Vec::new();
    let mut settings = BTreeMap::new();
    for (key, value) in all {
        let info = opts.option(key).expect("checked when read");
        if info.positional {
            argv.insert(0, value.clone());
        } else if !info.takes_value {
            if value == "true" {
                argv.push(format!("--{key}"));
            }
        } else {
            argv.push(format!("--{key}"));
            argv.push(value.clone());
        }
        let default = if info.takes_value { info.default.clone() } else { Some("false".into()) };
        if default.as_deref() != Some(value.as_str()) {
            settings.insert(key.clone(), value.clone());
        }
    }
    // What `ticket imp` itself would refuse (values, files, combinations, schedules), refused before anything runs.
    crate::lottery::imp::options::check_settings(all).map_err(|e| format!("task {index} ({}): {e}", cell_label(&cell)))?;
    Ok(TaskDef { index, hash: task_hash(&settings), cell, settings, argv })
}
