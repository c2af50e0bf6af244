//! `switchboard`: serve every handler in one local process, provision AWS resources.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    switchboard::init_tracing();
    match switchboard::run(switchboard::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
