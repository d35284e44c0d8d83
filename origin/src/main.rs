//! The `origin` command.
//!
//! ```text
//! origin serve                         # the HTTP service (settings: --help, .env.example)
//! origin migrate                       # apply database migrations
//! origin import                        # MovieLens 100K from data/ml-100k
//! origin import --synthetic --users 162000 --movies 62000 --ratings 25000000 --replace
//! origin token --user 42               # a user's JWT, signed with JWT_SECRET
//! origin token --admin                 # an admin's JWT
//! ```

use clap::{Parser, Subcommand};
use origin::auth::{Caller, Tokens};
use origin::db::Db;
use origin::import::{Source, SyntheticSpec};
use origin::settings::{DEV_JWT_SECRET, DatabaseSettings, Settings};
use origin::startup::Application;
use secrecy::SecretString;
use shared::params::UserId;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "origin",
    version,
    about = "Movie recommendations: the origin service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        #[arg(long, env = "JWT_SECRET", default_value = DEV_JWT_SECRET, hide_default_value = true)]
        jwt_secret: SecretString,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(settings) => {
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
                Tokens::new(&jwt_secret).mint(caller, Duration::from_secs(days * 86_400))?;
            println!("{token}");
        }
    }
    Ok(())
}
