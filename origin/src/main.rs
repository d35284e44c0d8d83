//! The `origin` command.
//!
//! ```text
//! origin serve                         # the HTTP service (settings: --help, .env.example)
//! origin migrate                       # apply database migrations
//! origin import                        # MovieLens 100K from data/ml-100k
//! origin import --synthetic --users 162000 --movies 62000 --ratings 25000000 --replace
//! origin train                        # train the recommender, store a new model version
//! origin eval                         # quality on a 75/25 split, beside a popularity baseline
//!                                     # (stored: the dashboard shows the newest)
//! origin token --user 42               # a user's JWT, signed with JWT_SECRET
//! origin token --admin                 # an admin's JWT
//! ```

use clap::{Parser, Subcommand};
use origin::auth::{Caller, Tokens};
use origin::db::Db;
use origin::import::edge_purge;
use origin::import::{Source, SyntheticSpec};
use origin::settings::{DEV_JWT_SECRET, DatabaseSettings, Settings};
use origin::startup::Application;
use origin::telemetry::LogFormat;
use recommender::als::AlsParams;
use recommender::evaluation::{Mode, MultiReport, Report};
use secrecy::SecretString;
use shared::params::UserId;
use std::path::PathBuf;
use std::time::Duration;

/// mimalloc rather than the system allocator: a request allocates and frees dozens of small
/// buffers across two worker threads, where glibc's malloc spent about a tenth of the origin's
/// CPU under load (`perf`, README "Where the CPU goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "origin",
    version,
    about = "Movie recommendations: the origin service"
)]
struct Cli {
    /// Log lines on stderr: `text` (coloured only on a terminal) or `json` (one object a line).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The hyper-parameters of `origin train` (defaults: the values chosen by `origin eval`).
#[derive(clap::Args)]
struct TrainArgs {
    /// Latent factors.
    #[arg(long, default_value_t = AlsParams::default().factors)]
    factors: usize,
    /// Epochs (alternations).
    #[arg(long, default_value_t = AlsParams::default().epochs)]
    epochs: usize,
    /// Regularisation λ.
    #[arg(long, default_value_t = AlsParams::default().reg)]
    reg: f32,
    /// Frequency exponent ν: a user or movie with n ratings is regularised by λ·(n+1)^ν.
    #[arg(long, default_value_t = AlsParams::default().reg_exponent)]
    reg_exponent: f32,
    /// Confidence scale α: a rating r counts with confidence 1 + α·r.
    #[arg(long, default_value_t = AlsParams::default().alpha)]
    alpha: f32,
    /// Seed of the initial factors (same seed, same data: same model).
    #[arg(long, default_value_t = AlsParams::default().seed)]
    seed: u64,
}

impl From<TrainArgs> for AlsParams {
    fn from(a: TrainArgs) -> Self {
        AlsParams {
            factors: a.factors,
            epochs: a.epochs,
            reg: a.reg,
            reg_exponent: a.reg_exponent,
            alpha: a.alpha,
            seed: a.seed,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(Box<Settings>),
    /// Apply pending database migrations.
    Migrate(DatabaseSettings),
    /// Load MovieLens 100K (default) or a synthetic data set into PostgreSQL. Idempotent.
    Import {
        #[command(flatten)]
        database: DatabaseSettings,
        /// Folder holding ml-100k.inter, ml-100k.item and ml-100k.user (scripts/fetch-data.sh).
        #[arg(long, env = "MOVIELENS_DIR", default_value = "data/ml-100k")]
        movielens: PathBuf,
        /// Generate a synthetic MovieLens-shaped data set instead.
        #[arg(long)]
        synthetic: bool,
        /// Synthetic: users.
        #[arg(long, default_value_t = 162_000, requires = "synthetic")]
        users: u32,
        /// Synthetic: movies.
        #[arg(long, default_value_t = 62_000, requires = "synthetic")]
        movies: u32,
        /// Synthetic: ratings.
        #[arg(long, default_value_t = 25_000_000, requires = "synthetic")]
        ratings: u64,
        /// Synthetic: seed (same seed, same data).
        #[arg(long, default_value_t = 42, requires = "synthetic")]
        seed: u64,
        /// Replace a different data set already in the database.
        #[arg(long)]
        replace: bool,
        /// After an import, purge everything the edge at this URL holds (e.g.
        /// http://127.0.0.1:8787; tag `all`, every location), with PURGE_SECRET.
        #[arg(long, env = "EDGE_PURGE_URL", requires = "purge_secret")]
        purge_edge: Option<String>,
        /// The edge's purge secret.
        #[arg(long, env = "PURGE_SECRET", hide_env_values = true)]
        purge_secret: Option<SecretString>,
    },
    /// Train the recommender on every rating and store it as a new model version.
    Train {
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        params: TrainArgs,
        /// Train only when the newest stored model is not what this build trains for the data
        /// held (no model, another kind for the catalogue's size, or an older training
        /// revision); scripts/up.sh and scripts/test.sh use it.
        #[arg(long)]
        if_outdated: bool,
    },
    /// Evaluate: 75/25 split per user, grid on validation folds of the 75%, the chosen model
    /// and a popularity baseline on the 25% (precision, recall, NDCG at 10, coverage). The
    /// report is stored in PostgreSQL too, for the dashboard.
    Eval {
        #[command(flatten)]
        database: DatabaseSettings,
        /// Epochs of every candidate.
        #[arg(long, default_value_t = AlsParams::default().epochs)]
        epochs: usize,
        /// Seed of the splits and the models.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Evaluate over several 75/25 splits (e.g. 42,7,13,21,99) every model (popularity,
        /// ALS, EASE, their blend), with mean ± standard deviation; hyper-parameters chosen
        /// on each split's validation folds. Without it, one split (`--seed`) and ALS's grid.
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        split_seeds: Option<Vec<u64>>,
        /// With `--split-seeds`: the default hyper-parameters, no search (a minute or so).
        #[arg(long, requires = "split_seeds")]
        quick: bool,
    },
    /// Print a JWT signed with the configured secret.
    Token {
        /// The user the token is for.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        user: Option<String>,
        /// An admin token instead.
        #[arg(long)]
        admin: bool,
        /// Validity in days.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Secret for HS256 JWTs.
        #[arg(long, env = "JWT_SECRET", default_value = DEV_JWT_SECRET, hide_default_value = true, hide_env_values = true)]
        jwt_secret: SecretString,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    origin::telemetry::init_logging(cli.log_format);
    match cli.command {
        Command::Serve(settings) => {
            // Before connecting to anything: a public secret on a reachable address is refused
            // with one line and clap's exit code for invalid settings (2), not an error chain.
            if let Err(err) = settings.check_secrets() {
                eprintln!("origin: {err}");
                std::process::exit(2);
            }
            let app = Application::build(*settings).await?;
            tracing::info!(port = app.port(), "origin listening");
            app.run_until_stopped().await?;
        }
        Command::Migrate(database) => {
            Db::connect_lazy(&database)?.migrate().await?;
            eprintln!("migrations applied");
        }
        Command::Import {
            database,
            movielens,
            synthetic,
            users,
            movies,
            ratings,
            seed,
            replace,
            purge_edge,
            purge_secret,
        } => {
            let db = Db::connect_lazy(&database)?;
            db.migrate().await?;
            let source = if synthetic {
                Source::Synthetic(SyntheticSpec {
                    users,
                    movies,
                    ratings,
                    seed,
                })
            } else {
                Source::MovieLens { dir: movielens }
            };
            let report = origin::import::import(db.pool(), &source, replace, true).await?;
            if report.skipped {
                eprintln!("{} is already imported: nothing to do", report.dataset);
            } else {
                eprintln!(
                    "imported {}: {} movies, {} users, {} ratings in {:.1} s",
                    report.dataset,
                    report.movies,
                    report.users,
                    report.ratings,
                    report.elapsed.as_secs_f64()
                );
                if let (Some(edge), Some(secret)) = (purge_edge, purge_secret) {
                    edge_purge::purge_all(&edge, &secret).await?;
                    eprintln!("edge {edge}: everything it held purged (tag `all`)");
                }
            }
        }
        Command::Train {
            database,
            params,
            if_outdated,
        } => {
            let db = Db::connect_lazy(&database)?;
            db.migrate().await?;
            if if_outdated && origin::model::newest_is_current(&db).await? {
                eprintln!("the newest stored model is current: not training");
                return Ok(());
            }
            let params = AlsParams::from(params);
            let version = origin::model::train_and_store(&db, params).await?;
            eprintln!(
                "stored model {version}; running origins load it on POST /admin/model/reload or restart"
            );
            println!("{version}");
        }
        Command::Eval {
            database,
            split_seeds: Some(seeds),
            quick,
            json,
            ..
        } => {
            let db = Db::connect_lazy(&database)?;
            db.migrate().await?;
            let mode = if quick { Mode::Quick } else { Mode::Search };
            let report = origin::model::evaluate_splits(&db, &seeds, mode).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_splits(&report);
            }
        }
        Command::Eval {
            database,
            epochs,
            seed,
            json,
            split_seeds: None,
            ..
        } => {
            let db = Db::connect_lazy(&database)?;
            db.migrate().await?;
            let report = origin::model::evaluate(&db, epochs, seed).await?;
            // Kept for the dashboard's model panel (GET /admin/dashboard).
            origin::model::store_evaluation(&db, &report).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
        }
        Command::Token {
            user,
            admin,
            days,
            jwt_secret,
        } => {
            let caller = if admin {
                Caller::Admin
            } else {
                let raw = user.unwrap_or_default();
                Caller::User(UserId::parse(&raw).map_err(|e| anyhow::anyhow!(e))?)
            };
            let token =
                Tokens::new(&jwt_secret)?.mint(caller, Duration::from_secs(days * 86_400))?;
            println!("{token}");
        }
    }
    Ok(())
}

/// The table of `origin eval --split-seeds`: every model's mean ± sd over the splits, then
/// each split's figures and choices.
fn print_splits(report: &MultiReport) {
    let mode = match report.mode {
        Mode::Quick => "default hyper-parameters, no search",
        Mode::Search => "hyper-parameters chosen on each split's validation folds",
    };
    let seeds: Vec<String> = report.per_seed.iter().map(|s| s.seed.to_string()).collect();
    println!(
        "Per-user 75/25 splits (seeds {}), top 10, training items excluded; {mode}. This catalogue is served by `{}`.",
        seeds.join(", "),
        report.kind.name()
    );
    println!();
    println!("| model | precision@10 | recall@10 | NDCG@10 | coverage |");
    println!("| --- | --- | --- | --- | --- |");
    for m in &report.summary {
        let cell = |s: recommender::evaluation::Spread| format!("{:.4} ± {:.4}", s.mean, s.sd);
        let served = if m.model == report.kind.name() {
            " (served)"
        } else {
            ""
        };
        println!(
            "| {}{served} | {} | {} | {} | {} |",
            m.model,
            cell(m.precision),
            cell(m.recall),
            cell(m.ndcg),
            cell(m.coverage)
        );
    }
    println!();
    println!(
        "| split seed | ALS reg, α | EASE λ | blend w | ALS P@10 / NDCG@10 | blend P@10 / NDCG@10 |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for s in &report.per_seed {
        println!(
            "| {} | {}, {} | {} | {} | {:.4} / {:.4} | {:.4} / {:.4} |",
            s.seed,
            s.als_params.reg,
            s.als_params.alpha,
            s.blend_params.ease.lambda,
            s.blend_params.als_weight,
            s.als.precision,
            s.als.ndcg,
            s.blend.precision,
            s.blend.ndcg
        );
    }
}

fn print_report(report: &Report) {
    let c = &report.chosen;
    println!(
        "Per-user 75/25 split (seed {}), top 10, training items excluded.",
        c.seed
    );
    println!(
        "Chosen on {} validation folds of the 75% ({} candidates): factors {}, reg {}, reg_exponent {}, alpha {}, epochs {}.",
        recommender::evaluation::VALIDATION_FOLDS,
        report.trials.len(),
        c.factors,
        c.reg,
        c.reg_exponent,
        c.alpha,
        c.epochs
    );
    println!();
    println!("| model | precision@10 | recall@10 | NDCG@10 | coverage |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, m) in [
        ("implicit ALS (this)", &report.model),
        ("popularity baseline", &report.popularity),
    ] {
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {:.4} |",
            m.precision, m.recall, m.ndcg, m.coverage
        );
    }
}
