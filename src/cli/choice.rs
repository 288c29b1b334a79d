//! clap value parsers for the library's named settings (`crate::choice`): the accepted values and their help
//! come from the setting's own render_table, the value from its `FromStr`.
use crate::choice::Choice;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

/// `value_parser = parse_choice::<Scope>()`: the names of `T`, with their help, as clap's possible values.
pub(crate) fn parse_choice<T: Choice + std::str::FromStr>() -> impl TypedValueParser<Value = T> {
    let values = T::all().iter().map(|v| match v.about() {
        Some(about) => PossibleValue::new(v.name()).help(about),
        None => PossibleValue::new(v.name()),
    });
    PossibleValuesParser::new(values).map(|s| s.parse::<T>().unwrap_or_else(|_| unreachable!("clap passes only the names of the table")))
}
