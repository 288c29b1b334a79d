//! The `ticket` command line: parse, dispatch, map errors to exit codes (0 ok, 1 a check or gate failed,
//! 2 bad input, 3 the environment could not do the work).
use clap::Parser;

fn main() {
    let cli = ticket::cli::Cli::parse();
    let json = cli.json;
    if let Err(e) = ticket::cli::dispatch(cli) {
        let code = e.exit_code();
        if json && !matches!(e, ticket::Error::Reported(_)) {
            println!("{}", serde_json::json!({ "error": e.to_string(), "exit_code": code }));
        }
        eprintln!("error: {e}");
        std::process::exit(code);
    }
}
