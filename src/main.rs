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
    /// Ingest files and folders, with a progress bar and a summary; exits 1 if any
    /// file failed. Without --url, a server on the same settings runs in this process.
    Ingest {
        /// Files and folders (walked; hidden files skipped).
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// A running docqa to send them to, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
        /// The collection to ingest into (it must exist).
        #[arg(long, default_value = "default")]
        collection: String,
        /// No progress bar (for logs and scripts).
        #[arg(long)]
        quiet: bool,
    },
    /// Manage tenants in the catalog (DATABASE_URL) directly, as the operator.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Manage API keys in the catalog (DATABASE_URL) directly, as the operator.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Measure retrieval and answer quality on a benchmark (../shared/eval's
    /// formats): ingests its documents into a fresh collection, asks its
    /// questions, prints a table (and JSON with --json). Without --url, a server
    /// runs in this process on a temporary data dir.
    Eval {
        #[arg(value_enum)]
        dataset: docqa::eval::Dataset,
        /// The folder with scifact/, squad/ and uda/.
        #[arg(long, env = "DOCQA_EVAL_DIR", default_value = "../shared/eval")]
        data: std::path::PathBuf,
        /// SciFact: test (default) or train. SQuAD: dev (default), heldout or all.
        /// UDA: all (default) or one subset (paper_text, paper_tab, fin, tat, nq, feta).
        #[arg(long)]
        split: Option<String>,
        /// Only the first N questions.
        #[arg(long)]
        limit: Option<usize>,
        /// A running docqa to evaluate, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
        /// With --url: evaluate in this collection, created if missing, so that
        /// runs after the first find the documents already ingested.
        #[arg(long, requires = "url")]
        collection: Option<String>,
        /// Also write the report as JSON to this file (`-`: stdout, no table).
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Create a tenant (with its `default` collection).
    Create { name: String },
    /// List tenants, as JSON lines.
    List,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; the secret is printed on the last line, this once.
    Create {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// reader, writer, admin or service.
        #[arg(long)]
        role: String,
        /// For a service key: reader (default) or writer.
        #[arg(long)]
        rights: Option<String>,
        /// Limit it to these collections (comma-separated).
        #[arg(long, value_delimiter = ',')]
        collections: Option<Vec<String>>,
        /// Principals it acts as, e.g. user:alice@corp,group:legal.
        #[arg(long, value_delimiter = ',')]
        principals: Option<Vec<String>>,
        #[arg(long)]
        name: Option<String>,
        /// RFC 3339, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List keys (never their secrets), as JSON lines.
    List,
    /// Revoke a key by its id, in effect for the next request.
    Revoke { id: String },
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
        Command::Ingest {
            paths,
            url,
            collection,
            quiet,
        } => match ingest(paths, url, collection, quiet).await {
            Ok(summary) if summary.failed.is_empty() => Ok(()),
            Ok(summary) => {
                return ExitCode::from(u8::try_from(summary.failed.len().min(100)).unwrap_or(1).max(1));
            }
            Err(e) => Err(e),
        },
        Command::Keys { command } => keys(command).await,
        Command::Tenants { command } => tenants(command).await,
        Command::Eval {
            dataset,
            data,
            split,
            limit,
            url,
            collection,
            json,
            quiet,
        } => {
            let options = docqa::eval::EvalOptions {
                dataset,
                data_dir: data,
                split,
                limit,
                collection,
                progress: !quiet,
            };
            eval(options, url, json).await
        }
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

async fn ingest(
    paths: Vec<std::path::PathBuf>,
    url: Option<String>,
    collection: String,
    quiet: bool,
) -> Result<docqa::bulk::Summary, Box<dyn std::error::Error>> {
    let files = docqa::bulk::walk(&paths)?;
    let summary = match url {
        Some(url) => docqa::bulk::ingest(url.trim_end_matches('/'), &collection, files, !quiet).await?,
        None => {
            let mut config = Config::from_env()?;
            in_process(&mut config)?;
            let listener = TcpListener::bind(config.addr)?;
            let running = App::build(config).await?.start(listener)?;
            let base = format!("http://{}", running.addr);
            let result = docqa::bulk::ingest(&base, &collection, files, !quiet).await;
            running.stop().await;
            result?
        }
    };
    summary.print();
    Ok(summary)
}

async fn eval(
    options: docqa::eval::EvalOptions,
    url: Option<String>,
    json: Option<std::path::PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let report = match url {
        Some(url) => docqa::eval::run(url.trim_end_matches('/'), &options).await?,
        None => {
            // A throwaway server: the benchmark must not land in the user's data.
            let data_dir = tempfile::tempdir()?;
            let _ = dotenvy::dotenv();
            let mut vars: std::collections::HashMap<String, String> = std::env::vars().collect();
            vars.insert("DOCQA_DATA_DIR".into(), data_dir.path().display().to_string());
            let mut config = Config::from_vars(&vars)?;
            in_process(&mut config)?;
            let listener = TcpListener::bind(config.addr)?;
            let running = App::build(config).await?.start(listener)?;
            let base = format!("http://{}", running.addr);
            let result = docqa::eval::run(&base, &options).await;
            running.stop().await;
            result?
        }
    };
    let as_json = serde_json::to_string_pretty(&report)?;
    match json.as_deref() {
        Some(path) if path.as_os_str() == "-" => println!("{as_json}"),
        Some(path) => {
            std::fs::write(path, &as_json)?;
            print!("{}", report.table());
        }
        None => print!("{}", report.table()),
    }
    Ok(())
}

/// A server for this process alone: on a loopback port, without keys (the
/// caller is the operator at the machine).
fn in_process(config: &mut Config) -> Result<(), Box<dyn std::error::Error>> {
    config.addr = "127.0.0.1:0".parse()?;
    config.auth.required = false;
    Ok(())
}

/// Tenants need the whole app (a tenant starts with its `default` collection,
/// index included): it is built on the server's settings, without serving.
async fn tenants(command: TenantsCommand) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::from_env()?;
    in_process(&mut config)?;
    let app = App::build(config).await?;
    let result = app
        .tenants_command(match command {
            TenantsCommand::Create { name } => Some(name),
            TenantsCommand::List => None,
        })
        .await;
    app.close().await;
    for line in result? {
        println!("{line}");
    }
    Ok(())
}

async fn keys(command: KeysCommand) -> Result<(), Box<dyn std::error::Error>> {
    use docqa::auth::Scope;
    use docqa::auth::keys::{CreateKey, Keys};

    let config = Config::from_env()?;
    let at = config.database.describe();
    let catalog = docqa::catalog::connect(&config.database)
        .await
        .map_err(|e| format!("catalog, {at} (DATABASE_URL): {e}"))?;
    let keys = Keys::new(catalog.clone());
    let operator = Scope::operator();
    let parse_role = |raw: &str| raw.parse::<docqa::domain::Role>().map_err(|e| format!("--role: {e}"));
    let result: Result<(), Box<dyn std::error::Error>> = async {
        match command {
            KeysCommand::Create {
                tenant,
                role,
                rights,
                collections,
                principals,
                name,
                expires_at,
            } => {
                let request = CreateKey {
                    tenant: Some(tenant),
                    role: parse_role(&role)?,
                    rights: rights.as_deref().map(parse_role).transpose()?,
                    collections,
                    principals,
                    expires_at,
                    name,
                };
                let created = keys.create(&operator, request).await?;
                println!("{}", serde_json::to_string(&created.record)?);
                println!("{}", secrecy::ExposeSecret::expose_secret(&created.key));
            }
            KeysCommand::List => {
                for key in keys.list(&operator).await? {
                    println!("{}", serde_json::to_string(&key)?);
                }
            }
            KeysCommand::Revoke { id } => {
                let id = id.parse().map_err(|e| format!("{id:?} is not a key id: {e}"))?;
                keys.revoke(&operator, id).await?;
                println!("revoked {id}");
            }
        }
        Ok(())
    }
    .await;
    catalog.close().await;
    result
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
