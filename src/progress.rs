//! How long library work (writing a dataset, decoding it, detecting over images, a COCO evaluation) reports its
//! progress: through a callback, one [`Progress`] event per step, as `lottery::ImpEvent` and `setup::Progress`
//! do. The library never draws; the CLI turns the events into a progress bar (src/cli/progress.rs), and a
//! caller that wants nothing passes [`silent`].
//!
//! A piece of work sends `Total` (how many steps), any number of `Phase` and `Step` events, and `Done` when it
//! is over. A caller may have sent `Total` itself (it knows the count), so work whose count the caller knows
//! does not repeat it.

/// One event of a piece of work in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// The work has this many steps in all (sent again when a phase changes the count).
    Total(u64),
    /// What the work does now ("matching", "classes").
    Phase(&'a str),
    /// One more step done.
    Step,
    /// The work is over.
    Done,
}

/// The callback for a caller that shows nothing.
pub fn silent(_: Progress) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_the_callback_in_order() {
        let mut seen = Vec::new();
        let mut on = |p: Progress| seen.push(format!("{p:?}"));
        let work = |on: &mut dyn FnMut(Progress)| {
            on(Progress::Total(2));
            on(Progress::Phase("x"));
            on(Progress::Step);
            on(Progress::Step);
            on(Progress::Done);
        };
        work(&mut on);
        work(&mut silent);
        assert_eq!(seen, ["Total(2)", "Phase(\"x\")", "Step", "Step", "Done"]);
    }
}
