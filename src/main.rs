//! The `ticket` command line: parse, run, map errors to exit codes (0 ok, 1 a check or gate failed,
//! 2 bad input, 3 the environment could not do the work).
use clap::Parser;

fn main() {
    ticket::runtime::heap::keep_freed_memory();
    let cli = match ticket::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    let json = cli.json;
    if let Err(e) = ticket::cli::run(cli) {
        let code = e.exit_code();
        let msg = ticket::cli::render_error(&e);
        // A Reported error's report, saying so, is on stdout already.
        fail(&msg, code, json && !matches!(e, ticket::Error::Reported(_)));
    }
}

/// Ends the command with an error: the JSON report on stdout when asked, one line on stderr, the exit code.
fn fail(msg: &str, code: i32, json: bool) -> ! {
    if json {
        // The line on stderr carries the error; a stdout that cannot take the JSON adds nothing to it.
        let _ = ticket::fsio::write_stdout(&format!("{}\n", serde_json::json!({ "error": msg, "exit_code": code })));
    }
    ticket::fsio::stderr_line(format_args!("error: {msg}"));
    std::process::exit(code);
}

/// Help and version go out as clap writes them. A usage error is bad input like any other: one line (clap's
/// own spans 3–7, with a usage block that `--help` shows anyway) and exit 2.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut msg = String::new();
    for line in text.lines() {
        let item = line.trim();
        if item.is_empty() || item.starts_with("Usage:") || item.starts_with("For more information") {
            continue;
        }
        let item = item.strip_prefix("error: ").unwrap_or(item);
        // Indented lines list the arguments of the line above ("not provided:"); a tip is its own clause.
        let listed = line.starts_with(char::is_whitespace) && !item.starts_with("tip:");
        if !msg.is_empty() {
            msg += if listed && msg.ends_with(':') {
                " "
            } else if listed {
                ", "
            } else {
                "; "
            };
        }
        msg += item;
    }
    msg += " (see --help)";
    fail(&msg, 2, std::env::args().any(|a| a == "--json"));
}
