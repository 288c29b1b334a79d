//! Long library work reports progress through `ticket::progress` events, with no terminal type in sight: a
//! dataset written, decoded, and scored sends one step per unit of work and `Done` at the end, and a caller that
//! wants nothing passes `silent`.
use ticket::data::synth::{write_synth, SynthOptions};
use ticket::data::Dataset;
use ticket::eval::{CocoGt, DetSource, EvalOptions, IouType};
use ticket::progress::{silent, Progress};

/// The events `work` sends, as text.
fn events(work: impl FnOnce(&mut dyn FnMut(Progress))) -> Vec<String> {
    let mut seen = Vec::new();
    work(&mut |p| seen.push(format!("{p:?}")));
    seen
}

#[test]
fn writing_decoding_and_scoring_a_dataset_report_each_step_then_done() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("synth");
    let opts = SynthOptions { images: 3, seed: 1, size: 64 };
    let written = events(|on| {
        write_synth(&out, &opts, on).unwrap();
    });
    assert_eq!(written, ["Step", "Step", "Step", "Done"]);

    let ann = out.join("annotations.json");
    let ds = Dataset::from_coco(&ann, &out.join("images")).unwrap();
    let decoded = events(|on| ds.verify(on).unwrap());
    assert_eq!(decoded, ["Step", "Step", "Step", "Done"]);

    // A COCO evaluation: its own count (4 stages and one per category), the stages named as they start.
    let gt = CocoGt::load(&ann).unwrap();
    let opts = EvalOptions { tide: false, ..Default::default() };
    let scored = events(|on| {
        gt.evaluate(DetSource::Records(vec![]), IouType::Bbox, &opts, on).unwrap();
    });
    let categories = gt.categories().len();
    assert_eq!(scored[0], format!("Total({})", 4 + categories));
    let phases: Vec<&str> = scored.iter().filter(|e| e.starts_with("Phase")).map(String::as_str).collect();
    assert_eq!(
        phases,
        [r#"Phase("loading")"#, r#"Phase("matching")"#, r#"Phase("accumulating")"#, r#"Phase("TIDE")"#, r#"Phase("categories")"#]
    );
    assert_eq!(scored.iter().filter(|e| *e == "Step").count(), 4 + categories);
    assert_eq!(scored.last().map(String::as_str), Some("Done"));

    // Nothing to show: the same work, silently.
    gt.evaluate(DetSource::Records(vec![]), IouType::Bbox, &opts, &mut silent).unwrap();
}
