//! Settings that take one of a few names (`--scope global`, `iou_type = "segm"`): each enum's names and what
//! they do stand in one table, from which [`named_choices!`] makes `FromStr`, `Display` and [`Choice`], so a
//! library user parses a setting without a command-line parser, and the CLI builds its accepted values and
//! their help from the same table.

/// A setting with a fixed set of names.
pub trait Choice: Copy + Send + Sync + 'static {
    /// Every value, in the order the help lists them.
    fn all() -> &'static [Self];
    /// The name the value is written as.
    fn name(self) -> &'static str;
    /// One line on what the value does, where it needs one.
    fn about(self) -> Option<&'static str>;
}

/// The message a name outside the table gets.
pub fn unknown<T: Choice>(what: &str, given: &str) -> String {
    let names: Vec<&str> = T::all().iter().map(|v| v.name()).collect();
    format!("unknown {what} '{given}' (one of: {})", names.join(", "))
}

/// `named_choices!(Scope, "scope", [Global = "global": "Rank all …", Layer = "layer": "…"])`: [`Choice`],
/// `FromStr` and `Display` for the enum `Scope` from its names (and, where given, what each does).
macro_rules! named_choices {
    ($t:ident, $what:literal, [$($v:ident = $name:literal $(: $about:literal)?),+ $(,)?]) => {
        impl $crate::choice::Choice for $t {
            fn all() -> &'static [Self] {
                &[$($t::$v),+]
            }
            fn name(self) -> &'static str {
                match self {
                    $($t::$v => $name),+
                }
            }
            fn about(self) -> Option<&'static str> {
                match self {
                    $($t::$v => None$(.or(Some($about)))?),+
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str($crate::choice::Choice::name(*self))
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                use $crate::choice::Choice;
                Self::all().iter().copied().find(|v| v.name() == s).ok_or_else(|| $crate::choice::unknown::<Self>($what, s))
            }
        }
    };
}
pub(crate) use named_choices;

#[cfg(test)]
mod tests {
    use super::Choice;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Side {
        Left,
        Right,
    }
    named_choices!(Side, "side", [Left = "left": "The left one", Right = "right"]);

    #[test]
    fn names_parse_print_and_refuse_what_is_not_in_the_table() {
        assert_eq!("right".parse::<Side>(), Ok(Side::Right));
        assert_eq!(Side::Left.to_string(), "left");
        assert_eq!((Side::Left.about(), Side::Right.about()), (Some("The left one"), None));
        assert_eq!("Left".parse::<Side>(), Err("unknown side 'Left' (one of: left, right)".to_string()));
    }
}
