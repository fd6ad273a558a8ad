//! `respackd`: arguments → settings → telemetry → the chosen command (`run`, `sweep --once`,
//! `check-config`).

use std::process::ExitCode;

use respackd::cli;

/// mimalloc serves Rust's allocations and, through its `override` feature, those of the C code
/// linked in (the bundled SQLite): with glibc's malloc, allocation was about a quarter of the CPU
/// time of a sweep batch or a usage group (`cargo xtask bench sweep|deduct`, README Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
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
