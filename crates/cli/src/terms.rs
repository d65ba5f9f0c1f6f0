//! `regctl terms`: open a term of a body.

use clap::Subcommand;
use registry_client::{request_id, v1};

use crate::args::{self, name, CliError};
use crate::output::print_write;
use crate::Context;

/// Terms of bodies.
#[derive(Debug, Subcommand)]
pub enum Terms {
    /// Open a term of a body.
    #[command(
        after_help = "Example:\n  regctl terms open units/0193… 2020-2025 --from 2020-10-15 --planned-until 2025-10-15"
    )]
    Open {
        /// The body.
        body: String,
        /// The label ("2020-2025").
        label: String,
        /// Its first day.
        #[arg(long)]
        from: String,
        /// The planned first day after it.
        #[arg(long)]
        planned_until: Option<String>,
    },
}

impl Terms {
    /// Runs the subcommand.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        match self {
            Self::Open {
                body,
                label,
                from,
                planned_until,
            } => {
                let request = v1::OpenTermRequest {
                    request_id: request_id(),
                    term_id: String::new(),
                    body: name("units", &body),
                    label,
                    valid_from: args::date("--from", &from)?,
                    planned_until: args::opt_date("--planned-until", planned_until.as_deref())?,
                };
                print_write(
                    cx,
                    "opened",
                    cx.client
                        .command()
                        .open_term(request)
                        .await?
                        .into_inner()
                        .result,
                )
            }
        }
    }
}
