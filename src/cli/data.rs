//! `ticket data`: training data. `synth` writes a synthetic COCO dataset (shapes and stick-figure persons);
//! `check` opens a COCO or VOC dataset the way training will and decodes every image, so a broken file fails in
//! one line before a long run starts.
use super::{print_report, progress_bar, render_table};
use crate::data::classify::write_classify;
use crate::data::synth::{write_synth, SynthOptions};
use crate::error::Result;
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
    /// Image side in pixels (default 128; with --classify, the crop side, default 64).
    #[arg(long)]
    pub size: Option<usize>,
    /// Write a classification set (--images object crops of the synthetic scenes, the detection set's five
    /// categories) instead of a detection set.
    #[arg(long)]
    pub classify: bool,
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
            let size = a.size.unwrap_or(64);
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
            let opts = SynthOptions { images: a.images, seed: a.seed, size: a.size.unwrap_or(128) };
            opts.validate()?;
            let report = write_synth(&a.out, &opts, &mut progress_bar(a.images as u64, "synth", json))?;
            print_report(json, &report, |r| {
                let rows: Vec<Vec<String>> = r.per_category.iter().map(|(n, c)| vec![n.clone(), c.to_string()]).collect();
                format!(
                    "wrote {} images ({}x{} px, seed {}) and {} objects to {}\n{}",
                    r.images,
                    r.size,
                    r.size,
                    r.seed,
                    r.objects,
                    r.annotations.display(),
                    render_table(&["category", "objects"], &rows)
                )
            });
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
