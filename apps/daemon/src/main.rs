//! `respackd`: arguments → settings → telemetry → the chosen command (`run`, `sweep --once`,
//! `check-config`).

use std::process::ExitCode;

use respackd::cli;

#[tokio::main]
async fn main() -> ExitCode {
    // respackd's RSS has a budget (see respack_allocator).
    respack_allocator::return_freed_memory_promptly();
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("respackd: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match respackd::execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("respackd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
