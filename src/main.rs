use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use docqa::{App, Config};

#[derive(Parser)]
#[command(name = "docqa", version, about = "Document question-answering server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default). Settings come from the environment and `.env`.
    Serve,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    docqa::telemetry::init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("docqa: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let addr = config.addr;
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr} (DOCQA_ADDR): {e}"))?;
    let app = App::build(config).await?;
    app.start(listener)?.wait().await?;
    Ok(())
}
