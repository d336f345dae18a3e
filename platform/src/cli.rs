//! The command line of the `antidote` binary: one subcommand per role or tool.
//!
//! Settings come from flags with matching environment variables (DESIGN §11); a missing or
//! unreachable dependency is a one-line error naming what and where.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::curriculum::{self, model};
use antidote_telemetry::clickhouse_client::{self, CLICKHOUSE_URL_ENV, DEFAULT_CLICKHOUSE_URL};
use antidote_telemetry::schema;

/// Antidote: hands-on network-automation lessons in the browser, observable end to end.
#[derive(Debug, Parser)]
#[command(name = "antidote", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a curriculum directory and report every problem as `file:line: message`.
    ///
    /// Exits 1 when anything is wrong. Ends with a one-line summary.
    Validate {
        /// The curriculum directory (holds curriculum.meta.yaml, lessons/, images/, ...).
        dir: PathBuf,
    },
    /// Print the JSON Schema of a curriculum file (for editors and lesson repositories' CI).
    Schema {
        /// Which file's schema.
        #[arg(value_enum, default_value_t = SchemaKind::Lesson)]
        kind: SchemaKind,
    },
    /// Create or upgrade the ClickHouse database and tables (idempotent).
    Migrate {
        /// ClickHouse HTTP URL.
        #[arg(long, env = CLICKHOUSE_URL_ENV, default_value = DEFAULT_CLICKHOUSE_URL)]
        clickhouse_url: String,
        /// Database to migrate.
        #[arg(long, env = "ANTIDOTE_CLICKHOUSE_DATABASE", default_value = clickhouse_client::DATABASE)]
        database: String,
    },
}

/// Curriculum files that have a schema.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// lessons/<lesson>/lesson.meta.yaml
    Lesson,
    /// images/<image>/image.meta.yaml
    Image,
    /// collections/<collection>/collection.meta.yaml
    Collection,
    /// curriculum.meta.yaml
    Curriculum,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { dir } => validate(&dir),
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Lesson => model::schema_of::<model::Lesson>(),
                SchemaKind::Image => model::schema_of::<model::Image>(),
                SchemaKind::Collection => model::schema_of::<model::Collection>(),
                SchemaKind::Curriculum => model::schema_of::<model::CurriculumMeta>(),
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate {
            clickhouse_url,
            database,
        } => migrate(&clickhouse_url, &database),
    }
}

fn validate(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let loaded = curriculum::load(dir)?;
    // Problem paths are relative to the curriculum; print them relative to where the user
    // stands so editors and terminals can jump to them.
    for problem in &loaded.problems {
        let located = curriculum::Problem {
            file: dir.join(&problem.file),
            ..problem.clone()
        };
        println!("{located}");
    }
    println!("{}: {}", dir.display(), loaded.summary());
    Ok(if loaded.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn migrate(url: &str, database: &str) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = clickhouse_client::client(url);
    let report = runtime.block_on(schema::migrate(&client, url, database))?;
    let list = |v: &[u32]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    println!(
        "ClickHouse {} at {url}, database {database}: applied {}; already applied {}",
        report.server_version,
        list(&report.applied),
        list(&report.already_applied)
    );
    for (version, min) in &report.skipped {
        println!("skipped migration {version}: needs ClickHouse {min} or newer");
    }
    Ok(ExitCode::SUCCESS)
}
