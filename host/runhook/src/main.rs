//! The `runhook` binary: parses the command line and hands off to [`runhook::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = runhook::cli::Cli::parse();
    runhook::cli::init_logging(cli.log_format, cli.verbose, cli.quiet_by_default());
    match runhook::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
