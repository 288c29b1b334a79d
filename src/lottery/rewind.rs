//! Where a ticket's surviving weights restart from (Frankle et al.'s rewinding; the seed's "late resetting").
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rewind {
    /// The initial weights (the original lottery ticket).
    Init,
    /// The weights after this many steps of dense training (late resetting).
    Step(u64),
    /// No rewind: keep the trained weights and fine-tune (the usual prune + fine-tune baseline).
    None,
}

impl std::str::FromStr for Rewind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "init" => Ok(Rewind::Init),
            "none" => Ok(Rewind::None),
            n => n.parse::<u64>().map(Rewind::Step).map_err(|_| format!("unknown rewind '{s}' (one of: init, none, or a step count)")),
        }
    }
}

impl Rewind {
    /// As `--rewind` takes it (init, a step, none): how reports label runs.
    pub fn as_arg(&self) -> String {
        match self {
            Rewind::Init => "init".into(),
            Rewind::Step(k) => k.to_string(),
            Rewind::None => "none".into(),
        }
    }
}

impl std::fmt::Display for Rewind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rewind::Init => write!(f, "init"),
            Rewind::Step(k) => write!(f, "step {k}"),
            Rewind::None => write!(f, "none (fine-tune)"),
        }
    }
}
