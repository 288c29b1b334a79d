//! `ticket data`: training data. `synth` writes a synthetic COCO dataset (shapes and stick-figure persons);
//! `check` opens a COCO or VOC dataset the way training will and decodes every image, so a broken file fails in
//! one line before a long run starts.
use super::{print_report, progress_bar, render_table};
use crate::data::classify::write_classify;
use crate::data::synth::{write_synth_mix, Rare, Scales, SceneMix, SynthOptions, SynthReport};
use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Write a synthetic COCO dataset: DIR/images/*.png and DIR/annotations.json (boxes, masks, keypoints).
    /// With --classify, a classification set cut from the same scenes, one crop per object, in the format
    /// `ticket train --classify` reads: DIR/images/*.png and DIR/labels.json =
    /// {"categories": [NAME, …], "images": [{"file_name": "000001.png", "category": NAME}, …]}
    /// (file names relative to DIR/images; class index = position in categories).
    Synth(SynthArgs),
    /// Load a COCO or VOC dataset as training does and decode every image.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of images.
    #[arg(long)]
    pub images: usize,
    /// Same seed, same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image side in pixels (default 128; with --classify, the crop side, default 64), or a range LO..HI each
    /// image draws its side from (e.g. 256..320).
    #[arg(long, value_parser = parse_side)]
    pub size: Option<(usize, Option<usize>)>,
    /// How objects are sized.
    #[arg(long, value_parser = super::choice::parse_choice::<Scales>(), default_value_t = Scales::Canvas, conflicts_with = "classify")]
    pub scales: Scales,
    /// Make one category rare: each object is of it with this probability (e.g. 0.05), the others share the
    /// rest evenly. The annotation file's `info` names it.
    #[arg(long, conflicts_with = "classify")]
    pub rare_fraction: Option<f64>,
    /// The rare category (with --rare-fraction).
    #[arg(long, requires = "rare_fraction", default_value = "triangle")]
    pub rare_category: String,
    /// Write a classification set (--images object crops of the synthetic scenes, the detection set's five
    /// categories) instead of a detection set.
    #[arg(long)]
    pub classify: bool,
}

impl SynthArgs {
    /// The options and the scene mix the flags ask for.
    fn settings(&self) -> Result<(SynthOptions, SceneMix)> {
        let (size, size_max) = self.size.unwrap_or((128, None));
        let rare = self.rare_fraction.map(|f| Rare::new(&self.rare_category, f)).transpose()?;
        Ok((SynthOptions { images: self.images, seed: self.seed, size }, SceneMix { size_max, scales: self.scales, rare }))
    }
}

/// `N` or `LO..HI` pixels.
fn parse_side(s: &str) -> std::result::Result<(usize, Option<usize>), String> {
    let num = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("'{s}' is not a side in pixels (N or LO..HI)"));
    match s.split_once("..") {
        Some((lo, hi)) => Ok((num(lo)?, Some(num(hi)?))),
        None => Ok((num(s)?, None)),
    }
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("truth").required(true).args(["coco", "voc"])))]
pub struct CheckArgs {
    /// COCO annotation json.
    #[arg(long)]
    pub coco: Option<PathBuf>,
    /// Pascal VOC folder (DIR/Annotations/*.xml or DIR/*.xml).
    #[arg(long)]
    pub voc: Option<PathBuf>,
    /// Image folder: COCO file_names are relative to it (default: DIR/images next to the json); VOC default
    /// DIR/JPEGImages.
    #[arg(long)]
    pub images: Option<PathBuf>,
}

pub fn run(cmd: DataCommand, json: bool) -> Result<()> {
    match cmd {
        DataCommand::Synth(a) if a.classify => {
            let size = match a.size {
                Some((_, Some(_))) => return Err(Error::setting("size", "`size` is one crop side with `classify`, not a range")),
                Some((side, None)) => side,
                None => 64,
            };
            SynthOptions { images: a.images, seed: a.seed, size }.validate()?;
            let report = write_classify(&a.out, a.images, a.seed, size, &mut progress_bar(a.images as u64, "synth", json))?;
            print_report(json, &report, |r| {
                let rows: Vec<Vec<String>> = r.per_category.iter().map(|(n, c)| vec![n.clone(), c.to_string()]).collect();
                format!(
                    "wrote {} object crops ({}x{} px, seed {}, from {} scenes) to {}\n{}",
                    r.images,
                    r.size,
                    r.size,
                    r.seed,
                    r.scenes,
                    r.labels.display(),
                    render_table(&["category", "images"], &rows)
                )
            });
            Ok(())
        }
        DataCommand::Synth(a) => {
            let (opts, mix) = a.settings()?;
            opts.validate()?;
            mix.validate(&opts)?;
            let report = write_synth_mix(&a.out, &opts, &mix, &mut progress_bar(a.images as u64, "synth", json))?;
            print_report(json, &report, render_synth);
            Ok(())
        }
        DataCommand::Check(a) => {
            let ds = crate::data::check::open(a.coco.as_deref(), a.voc.as_deref(), a.images.as_deref())?;
            ds.verify(&mut progress_bar(ds.len() as u64, "decoding", json))?;
            let report = ds.report();
            print_report(json, &report, |r| {
                let rows: Vec<Vec<String>> = r.categories.iter().map(|(id, n, c)| vec![n.clone(), id.to_string(), c.to_string()]).collect();
                format!(
                    "{}: {} images, {} objects, masks {}, {} keypoints; dropped {} crowd and {} degenerate annotations\n{}",
                    r.source.display(),
                    r.images,
                    r.objects,
                    if r.masks { "yes" } else { "no" },
                    r.keypoints,
                    r.dropped_crowd,
                    r.dropped_degenerate,
                    render_table(&["category", "id", "objects"], &rows)
                )
            });
            Ok(())
        }
    }
}

/// The text report of a detection set: the default set's lines, then what a mix adds (objects per area range,
/// the rare category).
fn render_synth(r: &SynthReport) -> String {
    let rows: Vec<Vec<String>> = r.per_category.iter().map(|(n, c)| vec![n.clone(), c.to_string()]).collect();
    let side = match r.size_max {
        Some(max) => format!("{}..{max} px", r.size),
        None => format!("{}x{} px", r.size, r.size),
    };
    let mut text = format!(
        "wrote {} images ({side}, seed {}) and {} objects to {}\n{}",
        r.images,
        r.seed,
        r.objects,
        r.annotations.display(),
        render_table(&["category", "objects"], &rows)
    );
    if let Some([small, medium, large]) = r.per_area {
        text += &format!("COCO area ranges: {small} small (< 32² px), {medium} medium, {large} large (≥ 96² px)\n");
    }
    if let Some(rare) = &r.rare {
        text += &format!("rare category: {} (drawn with probability {})\n", rare.category, rare.fraction);
    }
    text
}
