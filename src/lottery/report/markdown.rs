//! The Markdown of an IMP report: which runs, how they were grouped, a table per group with the numbers
//! behind every figure, and each figure (PNG, with its SVG linked).
use super::figures::{iou_types, Figure};
use super::stats::{GroupStats, Stat};

/// `0.4123` for one run, `0.4123 ± 0.0100` over replicates; `-` for none.
pub fn num(s: Option<&Stat>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.n > 1 => format!("{:.4} ± {:.4}", s.mean, s.std),
        Some(s) => format!("{:.4}", s.mean),
    }
}

fn pct(s: &Stat) -> String {
    if s.n > 1 {
        format!("{:.2}% ± {:.2}", 100.0 * s.mean, 100.0 * s.std)
    } else {
        format!("{:.2}%", 100.0 * s.mean)
    }
}

fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}|\n", header.join(" | "), header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for r in rows {
        out += &format!("| {} |\n", r.join(" | "));
    }
    out + "\n"
}

fn figure(out: &mut String, f: &Figure) {
    *out += &format!("![{}]({}.png)\n\n{} ([SVG]({}.svg))\n\n", f.name, f.name, f.caption, f.name);
}

/// The report: runs and groups, then one section per kind of figure, each with the tables behind its plots.
pub fn render(groups: &[GroupStats], figures: &[Figure]) -> String {
    let mut out = String::from("# IMP report\n\n");
    runs_section(&mut out, groups);
    levels_section(&mut out, groups);
    figures_where(&mut out, figures, |n| n.starts_with("ap"));
    layers_section(&mut out, groups);
    figures_where(&mut out, figures, |n| n.starts_with("layers"));
    deltas_section(&mut out, groups);
    figures_where(&mut out, figures, |n| n.starts_with("delta"));
    tide_section(&mut out, groups);
    figures_where(&mut out, figures, |n| n.starts_with("tide") || n.starts_with("loss") || n.starts_with("val_"));
    early_bird_section(&mut out, groups);
    figures_where(&mut out, figures, |n| n == "early_bird");
    out
}

fn figures_where(out: &mut String, figures: &[Figure], pick: impl Fn(&str) -> bool) {
    for f in figures.iter().filter(|f| pick(&f.name)) {
        figure(out, f);
    }
}

fn runs_section(out: &mut String, groups: &[GroupStats]) {
    let runs: usize = groups.iter().map(|g| g.runs.len()).sum();
    *out += &format!("{runs} run(s) in {} group(s); runs with identical settings except the seed (data order, and the initial weights when they come from a seed) are replicates (mean ± std).\n\n", groups.len());
    let mut models: Vec<&str> = groups.iter().map(|g| g.arch.as_str()).collect();
    models.dedup();
    models.sort();
    models.dedup();
    if models.len() > 1 {
        *out += &format!(
            "**These runs come from {} different architectures** ({}): each group holds one model's runs and is compared with its own dense level only; groups of different models share a plot but not a baseline.\n\n",
            models.len(),
            models.join(", ")
        );
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            g.runs.iter().map(move |(dir, seed)| {
                vec![format!("`{dir}`"), format!("{i}: {} ({})", g.method, g.label), seed.to_string(), g.arch.clone()]
            })
        })
        .collect();
    *out += &table(&["Run".into(), "Group".into(), "Seed".into(), "Model fingerprint".into()], &rows);
}

fn levels_section(out: &mut String, groups: &[GroupStats]) {
    let types = iou_types(groups);
    *out += "## Levels\n\n";
    for (i, g) in groups.iter().enumerate() {
        *out += &format!("### Group {i}: {} ({})\n\n", g.method, g.label);
        let flops = g.levels.iter().any(|l| l.flops_removed.is_some());
        let mut header: Vec<String> = vec!["Level".into(), "Network sparsity".into(), "Selected sparsity".into()];
        // Channel runs remove whole channels: what they save shows as FLOPs (a column only where present).
        if flops {
            header.push("FLOPs removed".into());
        }
        for t in &types {
            header.extend([format!("AP {t}"), format!("AP50 {t}"), format!("ΔAP {t}")]);
        }
        header.push("Collapsed tensors".into());
        let rows: Vec<Vec<String>> = g
            .levels
            .iter()
            .map(|l| {
                let mut row = vec![l.level.to_string(), pct(&l.network_sparsity), pct(&l.selected_sparsity)];
                if flops {
                    row.push(l.flops_removed.as_ref().map_or("-".into(), pct));
                }
                for t in &types {
                    row.extend([num(l.ap.get(t)), num(l.ap50.get(t)), if l.level == 0 { "-".into() } else { num(l.delta_ap.get(t)) }]);
                }
                row.push(if l.collapsed.is_empty() { "-".into() } else { l.collapsed.join(", ") });
                row
            })
            .collect();
        *out += &table(&header, &rows);
    }
}

fn layers_section(out: &mut String, groups: &[GroupStats]) {
    *out += "## Per layer\n\n";
    for (i, g) in groups.iter().enumerate() {
        match &g.layers {
            Some(layers) => {
                *out += &format!("Group {i}, level {} (first seed):\n\n", g.shown);
                let rows: Vec<Vec<String>> = layers
                    .iter()
                    .enumerate()
                    .map(|(k, l)| {
                        vec![
                            k.to_string(),
                            format!("`{}`", l.name),
                            l.group.clone(),
                            l.numel.to_string(),
                            format!("{:.2}%", 100.0 * l.sparsity),
                        ]
                    })
                    .collect();
                *out += &table(&["#".into(), "Tensor".into(), "Module".into(), "Weights".into(), "Sparsity".into()], &rows);
            }
            None => *out += &format!("Group {i}: no prune report at levels 1..={} (nothing to show per layer).\n\n", g.shown),
        }
    }
}

/// A two-column table of labelled statistics (size or category → ΔAP).
fn stat_rows(rows: &[(String, Stat)]) -> Vec<Vec<String>> {
    rows.iter().map(|(k, s)| vec![k.clone(), num(Some(s))]).collect()
}

fn deltas_section(out: &mut String, groups: &[GroupStats]) {
    *out += "## Per object size and category (ticket − dense)\n\n";
    for (i, g) in groups.iter().enumerate() {
        for (t, rows) in &g.size_delta {
            *out += &format!("Group {i}, {t}, level {} vs dense, per object size:\n\n", g.shown);
            *out += &table(&["Size".into(), "ΔAP".into()], &stat_rows(rows));
        }
        for (t, rows) in &g.category_delta {
            *out += &format!("Group {i}, {t}, level {} vs dense, per category:\n\n", g.shown);
            *out += &table(&["Category".into(), "ΔAP".into()], &stat_rows(rows));
        }
    }
}

fn tide_section(out: &mut String, groups: &[GroupStats]) {
    *out += "## Errors (TIDE) and training\n\n";
    for (i, g) in groups.iter().enumerate() {
        if let Some((t, rows)) = &g.tide {
            *out += &format!("Group {i}, {t}: AP50 gained by fixing each error type, dense vs level {}:\n\n", g.shown);
            *out += &table(
                &["Error".into(), "Dense".into(), format!("Level {}", g.shown)],
                &rows.iter().map(|(e, d, k)| vec![e.clone(), num(Some(d)), num(Some(k))]).collect::<Vec<_>>(),
            );
        }
    }
}

fn early_bird_section(out: &mut String, groups: &[GroupStats]) {
    *out += "## Early-bird tickets\n\n";
    if groups.iter().all(|g| g.early_bird.is_empty()) {
        *out += "No early-bird masks in these runs (ticket imp --early-bird F1,F2,…).\n\n";
    }
    for (i, g) in groups.iter().enumerate().filter(|(_, g)| !g.early_bird.is_empty()) {
        *out += &format!("Group {i}:\n\n");
        *out += &table(
            &["Fraction of dense training".into(), "Mask IoU with final".into()],
            &g.early_bird.iter().map(|(f, s)| vec![format!("{f:.3}"), num(Some(s))]).collect::<Vec<_>>(),
        );
    }
}
