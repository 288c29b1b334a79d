//! The figures of an IMP report (after the seed's figures): AP and AP50 against network sparsity with the
//! dense baseline (Fig. 1/2a/3), per-layer sparsity of a ticket (Fig. 2c), ΔAP per object size and per
//! category (Fig. 4, 5), TIDE errors dense vs ticket (App. C), training loss dense vs ticket (App. D) and
//! early-bird mask IoU over training (Fig. 2f).
use super::stats::{GroupStats, SIZES};
use crate::report::chart::{Band, BarPlot, LinePlot, Plot, Series};
use std::collections::BTreeSet;

/// One figure: the file stem (`NAME.png`, `NAME.svg`), what the Markdown says about it, and the plot.
pub struct Figure {
    pub name: String,
    pub caption: String,
    pub plot: Plot,
}

/// The IoU types any group scored, in a fixed order.
pub fn iou_types(groups: &[GroupStats]) -> Vec<String> {
    let all: BTreeSet<String> = groups.iter().flat_map(|g| g.levels[0].ap50.keys().chain(g.levels[0].ap.keys()).cloned()).collect();
    // `top1`: a classifier's top-1 accuracy, kept in the score's `ap` field (classifier IMP runs).
    let order = ["bbox", "segm", "keypoints", "voc", "top1"];
    order.iter().filter(|t| all.contains(**t)).map(|t| t.to_string()).collect()
}

fn sparsity_curve(groups: &[GroupStats], t: &str, ap50: bool) -> Option<Figure> {
    let metric = match (ap50, t) {
        (_, "top1") if ap50 => return None,
        (_, "top1") => "top-1",
        (true, _) => "AP50",
        (false, _) => "AP",
    };
    let pick = |l: &super::stats::LevelStat| if ap50 { l.ap50.get(t).copied() } else { l.ap.get(t).copied() };
    let series: Vec<Series> = groups
        .iter()
        .map(|g| Series {
            label: format!("{} (n={})", g.method, g.runs.len()),
            points: g.levels.iter().skip(1).filter_map(|l| pick(l).map(|s| (100.0 * l.network_sparsity.mean, s.mean, s.std))).collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return None;
    }
    // Groups that share their dense runs (the same trained models) share one band.
    let mut bands: Vec<(Band, Vec<String>)> = Vec::new();
    for g in groups {
        let Some(s) = pick(&g.levels[0]) else { continue };
        match bands.iter_mut().find(|(b, _)| b.mean.to_bits() == s.mean.to_bits() && b.std.to_bits() == s.std.to_bits()) {
            Some((_, labels)) => labels.push(g.method.clone()),
            None => bands.push((Band { label: String::new(), mean: s.mean, std: s.std }, vec![g.method.clone()])),
        }
    }
    let shared = bands.len() == 1;
    let bands = bands
        .into_iter()
        .map(|(mut b, labels)| {
            b.label = if shared { format!("dense (n={})", groups[0].runs.len()) } else { format!("dense: {}", labels.join(" / ")) };
            b
        })
        .collect();
    let name = format!("{}_{t}", metric.to_lowercase());
    Some(Figure {
        caption: format!(
            "{metric} ({t}) against network sparsity: tickets per level (mean ± std over seeds), dense baseline as a band (mean ± std)."
        ),
        plot: Plot::Line(LinePlot {
            title: format!("{metric} ({t}) vs network sparsity"),
            x_label: "network sparsity (%)".into(),
            y_label: metric.into(),
            series,
            bands,
            markers: true,
            x_range: None,
            y_range: None,
        }),
        name,
    })
}

/// Runs of several architectures (a width study): each ticket's AP minus its own dense model's (paired by seed)
/// against network sparsity, one series per architecture and method, the one-point "matches" margin as a band —
/// where the sparsity a ticket tolerates grows with the model, the larger model's curve stays in the band longer.
fn delta_by_model(groups: &[GroupStats], t: &str) -> Option<Figure> {
    let archs: BTreeSet<&str> = groups.iter().map(|g| g.arch.as_str()).collect();
    if archs.len() < 2 || t == "top1" {
        return None;
    }
    // One series per (architecture, method kind): the runs of one sparsity each (s50, s80, s90) join one curve.
    // Keyed by the fingerprint (two architectures of one size stay apart), smallest model first.
    let mut keyed: Vec<((&str, &str), &GroupStats, Vec<(f64, f64, f64)>)> = Vec::new();
    for g in groups {
        let points = g.levels.iter().skip(1).filter_map(|l| {
            let d = l.delta_ap.get(t)?;
            Some((100.0 * l.network_sparsity.mean, d.mean, d.std))
        });
        let key = (g.arch.as_str(), g.method_kind.as_str());
        match keyed.iter_mut().find(|(k, ..)| *k == key) {
            Some((_, _, p)) => p.extend(points),
            None => keyed.push((key, g, points.collect())),
        }
    }
    keyed.sort_by_key(|(_, g, _)| g.params);
    let one_kind = keyed.iter().map(|((_, kind), ..)| kind).collect::<BTreeSet<_>>().len() == 1;
    let series: Vec<Series> = keyed
        .into_iter()
        .filter(|(.., p)| !p.is_empty())
        .map(|((_, kind), g, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let arch = super::runs::arch_words(g.params, &g.arch);
            Series { label: if one_kind { arch } else { format!("{kind}, {arch}") }, points }
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(Figure {
        name: format!("ap_delta_by_model_{t}"),
        caption: format!(
            "AP ({t}) of each ticket minus its own dense model's, paired by seed (mean ± std), against network sparsity, one curve per architecture; the band is the one-point margin within which a ticket matches dense."
        ),
        plot: Plot::Line(LinePlot {
            title: format!("AP ({t}) minus dense AP, by architecture"),
            x_label: "network sparsity (%)".into(),
            y_label: "AP − dense AP".into(),
            series,
            bands: vec![Band { label: "within 1 AP point of dense".into(), mean: -0.005, std: 0.005 }],
            markers: true,
            x_range: None,
            y_range: None,
        }),
    })
}

fn delta_bars(groups: &[GroupStats], t: &str, per_size: bool) -> Option<Figure> {
    let rows = |g: &GroupStats| if per_size { g.size_delta.get(t).cloned() } else { g.category_delta.get(t).cloned() };
    let mut categories: Vec<String> = if per_size { SIZES.iter().map(|s| s.to_string()).collect() } else { Vec::new() };
    if !per_size {
        for g in groups {
            for (c, _) in rows(g).unwrap_or_default() {
                if !categories.contains(&c) {
                    categories.push(c);
                }
            }
        }
    }
    let series: Vec<(String, Vec<Option<f64>>)> = groups
        .iter()
        .filter_map(|g| {
            let r = rows(g)?;
            Some((
                format!("{} (level {})", g.method, g.shown),
                categories.iter().map(|c| r.iter().find(|(k, _)| k == c).map(|(_, s)| s.mean)).collect(),
            ))
        })
        .collect();
    if series.is_empty() || series.iter().all(|(_, v)| v.iter().all(Option::is_none)) {
        return None;
    }
    let what = if per_size { "object size" } else { "category" };
    Some(Figure {
        name: format!("delta_{}_{t}", if per_size { "size" } else { "category" }),
        caption: format!("Change in AP ({t}) of the ticket against dense per {what} (mean over seeds; below zero the ticket is worse)."),
        plot: Plot::Bar(BarPlot {
            title: format!("ΔAP vs dense per {what} ({t})"),
            y_label: "ΔAP (ticket − dense)".into(),
            categories,
            series,
            category_labels: true,
            colour_of: None,
        }),
    })
}

fn layers(g: &GroupStats, i: usize) -> Option<Figure> {
    let layers = g.layers.as_ref()?;
    let mut groups: Vec<String> = Vec::new();
    for l in layers {
        if !groups.contains(&l.group) {
            groups.push(l.group.clone());
        }
    }
    let colour_of = layers.iter().map(|l| groups.iter().position(|x| *x == l.group).expect("listed")).collect();
    // One legend entry per module group; the bars themselves are a single row coloured by group.
    let mut series: Vec<(String, Vec<Option<f64>>)> = groups.iter().map(|n| (n.clone(), vec![None; layers.len()])).collect();
    series[0].1 = layers.iter().map(|l| Some(100.0 * l.sparsity)).collect();
    Some(Figure {
        name: format!("layers_g{i}"),
        caption: format!(
            "Per-layer sparsity of the level-{} ticket of {} (first seed), tensor by tensor through the network, coloured by module group.",
            g.shown, g.method
        ),
        plot: Plot::Bar(BarPlot {
            title: format!("Per-layer sparsity, level {} ({})", g.shown, g.method),
            y_label: "sparsity (%)".into(),
            categories: layers.iter().map(|l| l.name.clone()).collect(),
            series,
            category_labels: false,
            colour_of: Some(colour_of),
        }),
    })
}

fn tide(g: &GroupStats, i: usize) -> Option<Figure> {
    let (t, rows) = g.tide.as_ref()?;
    if rows.is_empty() {
        return None;
    }
    Some(Figure {
        name: format!("tide_g{i}"),
        caption: format!(
            "TIDE error breakdown ({t}, {}): AP50 each error type costs, dense vs the level-{} ticket (mean over seeds).",
            g.method, g.shown
        ),
        plot: Plot::Bar(BarPlot {
            title: format!("TIDE errors, dense vs ticket ({t})"),
            y_label: "ΔAP50 if fixed".into(),
            categories: rows.iter().map(|r| r.0.clone()).collect(),
            series: vec![
                ("dense".into(), rows.iter().map(|r| Some(r.1.mean)).collect()),
                (format!("ticket (level {})", g.shown), rows.iter().map(|r| Some(r.2.mean)).collect()),
            ],
            category_labels: true,
            colour_of: None,
        }),
    })
}

/// A running mean over `window` steps: a batch-2 loss is too noisy to read step by step.
fn smoothed(v: &[(u64, f64)], window: usize) -> Vec<(f64, f64, f64)> {
    v.iter()
        .enumerate()
        .map(|(i, &(s, _))| {
            let w = &v[i.saturating_sub(window.max(1) - 1)..=i];
            (s as f64, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64, 0.0)
        })
        .collect()
}

/// Every group's ticket against the dense model in one plot (App. D): which trains faster, and to what loss.
/// Dense is the first group's dense level that trained (groups from `--trained` share it and log none).
fn loss_overview(groups: &[GroupStats]) -> Option<Figure> {
    let dense = groups.iter().find(|g| !g.loss_dense.is_empty())?;
    let window = (dense.loss_dense.len() / 50).max(1);
    let mut series = vec![Series { label: format!("dense (n={})", dense.runs.len()), points: smoothed(&dense.loss_dense, window) }];
    series.extend(groups.iter().filter(|g| !g.loss_ticket.is_empty()).map(|g| Series {
        label: format!("{} (level {}, n={})", g.method, g.shown, g.runs.len()),
        points: smoothed(&g.loss_ticket, window),
    }));
    if series.len() < 2 {
        return None;
    }
    Some(Figure {
        name: "loss_all".into(),
        caption: format!(
            "Training loss of every group's ticket against the dense model: mean over the seeds, running mean over {window} steps."
        ),
        plot: Plot::Line(LinePlot {
            title: "Training loss, dense vs tickets".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series,
            bands: vec![],
            markers: false,
            x_range: None,
            y_range: None,
        }),
    })
}

fn loss(g: &GroupStats, i: usize) -> Option<Figure> {
    let window = (g.loss_dense.len().max(g.loss_ticket.len()) / 50).max(1);
    let curve = |v: &[(u64, f64)]| smoothed(v, window);
    let series: Vec<Series> = [("dense (level 0)".to_string(), &g.loss_dense), (format!("ticket (level {})", g.shown), &g.loss_ticket)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(label, v)| Series { label, points: curve(v) })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(Figure {
        name: format!("loss_g{i}"),
        caption: format!(
            "Training loss, dense vs the level-{} ticket ({}): mean over the {} seed(s), running mean over {window} steps.",
            g.shown,
            g.method,
            g.runs.len()
        ),
        plot: Plot::Line(LinePlot {
            title: format!("Training loss, group {i}"),
            x_label: "step".into(),
            y_label: "loss".into(),
            series,
            bands: vec![],
            markers: false,
            x_range: None,
            y_range: None,
        }),
    })
}

/// Validation AP over training steps (`--val-every`): the dense model and every group's ticket, mean ± std over
/// the seeds — convergence judged on held-out data, and dense's plateau visible where its curve flattens.
fn val_overview(groups: &[GroupStats], t: &str) -> Option<Figure> {
    let curve = |v: &[(u64, super::stats::Stat)]| v.iter().map(|(s, st)| (*s as f64, st.mean, st.std)).collect();
    let dense = groups.iter().find(|g| g.val_dense.get(t).is_some_and(|v| !v.is_empty()));
    let mut series: Vec<Series> =
        dense.map(|g| Series { label: format!("dense (n={})", g.runs.len()), points: curve(&g.val_dense[t]) }).into_iter().collect();
    series.extend(groups.iter().filter(|g| g.shown > 0).filter_map(|g| {
        let v = g.val_ticket.get(t).filter(|v| !v.is_empty())?;
        Some(Series { label: format!("{} (level {}, n={})", g.method, g.shown, g.runs.len()), points: curve(v) })
    }));
    if series.is_empty() {
        return None;
    }
    let name = if t == "top1" { "top-1".to_string() } else { format!("{t} AP") };
    Some(Figure {
        name: format!("val_{t}"),
        caption: format!("Validation {name} over training steps (`val_every`): mean ± std over the seeds."),
        plot: Plot::Line(LinePlot {
            title: format!("Validation {name} over training"),
            x_label: "step".into(),
            y_label: name,
            series,
            bands: vec![],
            markers: true,
            x_range: None,
            y_range: None,
        }),
    })
}

fn early_bird(groups: &[GroupStats]) -> Option<Figure> {
    let series: Vec<Series> = groups
        .iter()
        .filter(|g| !g.early_bird.is_empty())
        .map(|g| Series {
            label: format!("{} (n={})", g.method, g.runs.len()),
            points: g.early_bird.iter().map(|(f, s)| (100.0 * f, s.mean, s.std)).collect(),
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(Figure {
        name: "early_bird".into(),
        caption: "Early-bird tickets: IoU of the mask drawn at a fraction of dense training with the final mask (mean ± std over seeds)."
            .into(),
        plot: Plot::Line(LinePlot {
            title: "Early-bird mask IoU with the final mask".into(),
            x_label: "dense training (%)".into(),
            y_label: "mask IoU".into(),
            series,
            bands: vec![],
            markers: true,
            x_range: Some((0.0, 100.0)),
            y_range: Some((0.0, 1.05)),
        }),
    })
}

/// Every figure the data allows, in the order the Markdown shows them.
pub fn figures(groups: &[GroupStats]) -> Vec<Figure> {
    let types = iou_types(groups);
    let mut out = Vec::new();
    for t in &types {
        out.extend(sparsity_curve(groups, t, false));
        out.extend(sparsity_curve(groups, t, true));
        out.extend(delta_by_model(groups, t));
    }
    for (i, g) in groups.iter().enumerate() {
        out.extend(layers(g, i));
    }
    for t in &types {
        out.extend(delta_bars(groups, t, true));
        out.extend(delta_bars(groups, t, false));
    }
    for (i, g) in groups.iter().enumerate() {
        out.extend(tide(g, i));
        out.extend(loss(g, i));
    }
    out.extend(loss_overview(groups));
    let val_types: std::collections::BTreeSet<&String> =
        groups.iter().flat_map(|g| g.val_dense.keys().chain(g.val_ticket.keys())).collect();
    for t in val_types {
        out.extend(val_overview(groups, t));
    }
    out.extend(early_bird(groups));
    out
}
