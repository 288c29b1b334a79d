//! `ticket mask apply --help` explains every argument (a new user rewinding a ticket by hand had to guess them).
mod common;
use common::*;

#[test]
fn mask_apply_arguments_have_help() {
    let out = ticket(&[&"mask", &"apply", &"--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // clap prints an argument's help on its line (or the next); an argument without help stands alone.
    let lines: Vec<&str> = help.lines().collect();
    for arg in ["<MODEL>", "<MASKS>", "--output <OUTPUT>", "--compact <COMPACT>", "--verify"] {
        let i = lines
            .iter()
            .position(|l| l.trim_start().trim_start_matches("-o, ").starts_with(arg))
            .unwrap_or_else(|| panic!("{arg} missing from:\n{help}"));
        let rest = lines[i].split(arg).nth(1).unwrap_or("").trim();
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        let has_help = !rest.is_empty() || (!next.is_empty() && !next.starts_with('-') && !next.starts_with('<'));
        assert!(has_help, "{arg} has no help text:\n{help}");
    }
}
