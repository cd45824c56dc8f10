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
    /// Bring the catalog's schema (DATABASE_URL) up to date, then exit. `serve`
    /// does this too at every start.
    Migrate,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    // A parser child (see ingest::extract::Extractor): no runtime, no logging on stdout.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(docqa::ingest::extract::CHILD_COMMAND) {
        return ExitCode::from(docqa::ingest::extract::child_main(&args[2..]) as u8);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("docqa: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// glibc gives every thread that allocates its own arena (up to 8 per core) and
/// keeps what each one freed: parsing and embedding on many threads peaked at
/// 952 MiB on the UDA PDFs with the default, 770 MiB with two arenas, no slower.
/// Set before any thread starts; `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first in main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    docqa::telemetry::init();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("docqa: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let at = config.database.describe();
    let catalog = docqa::catalog::connect(&config.database)
        .await
        .map_err(|e| format!("catalog, {at} (DATABASE_URL): {e}"))?;
    catalog.close().await;
    tracing::info!(catalog = %at, "catalog schema is up to date");
    Ok(())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let addr = config.addr;
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr} (DOCQA_ADDR): {e}"))?;
    let app = App::build(config).await?;
    app.start(listener)?.wait().await?;
    Ok(())
}
