//! `regctl holdings`: start and end a person's holding of an office, and show one.

use clap::Subcommand;
use registry_client::{request_id, v1};

use crate::args::{self, name, BasisArgs, CliError};
use crate::output::print_write;
use crate::read;
use crate::Context;

/// Holdings.
#[derive(Debug, Subcommand)]
pub enum Holdings {
    /// Record that a person began to hold an office (`elect` and `appoint` are shortcuts).
    #[command(
        visible_alias = "elect",
        visible_alias = "appoint",
        after_help = "Examples:\n  regctl holdings start persons/P offices/O --from 2020-10-15 --how elected --basis 12-QĐ/TU --basis-date 2020-10-15 --issuer \"Tỉnh ủy\"\n  regctl holdings start persons/P offices/O2 --from 06/2021 --how concurrent --cause holdings/H"
    )]
    Start {
        /// The person.
        person: String,
        /// The office.
        office: String,
        /// The first day (a day, a month or a year).
        #[arg(long)]
        from: String,
        /// How: elected, appointed, assigned, transferred, acting, concurrent, ex-officio.
        #[arg(long, default_value = "appointed")]
        how: String,
        /// For concurrent and ex officio holdings: the holding that causes it.
        #[arg(long)]
        cause: Option<String>,
        /// The term.
        #[arg(long)]
        term: Option<String>,
        #[command(flatten)]
        basis: BasisArgs,
        /// Use this UUID as the holding's id.
        #[arg(long)]
        id: Option<String>,
        /// For a past holding: the first day after it, recorded with the start in one decision.
        #[arg(long)]
        until: Option<String>,
        /// Why the past holding ended (with --until): term-end, transfer, retirement, ...
        #[arg(long, requires = "until")]
        end_reason: Option<String>,
    },
    /// Record that a holding ended.
    #[command(
        after_help = "Example:\n  regctl holdings end holdings/H --until 2025-07-01 --reason unit-merged"
    )]
    End {
        /// The holding.
        holding: String,
        /// The first day after it (a day, a month or a year).
        #[arg(long, required_unless_present = "end_unknown")]
        until: Option<String>,
        /// It ended, on a day not known.
        #[arg(long)]
        end_unknown: bool,
        /// Why: term-end, dismissal, resignation, transfer, retirement, death, ...
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        basis: BasisArgs,
    },
    #[command(
        after_help = "Example:\n  regctl holdings show holdings/0193… --known-at 2025-01-01T00:00:00Z"
    )]
    /// One holding, now or as known at an instant.
    Show(read::HoldingShow),
}

impl Holdings {
    /// Runs the subcommand.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let c = cx.client.command();
        match self {
            Self::Start {
                person,
                office,
                from,
                how,
                cause,
                term,
                basis,
                id,
                until,
                end_reason,
            } => {
                let request = v1::StartHoldingRequest {
                    request_id: request_id(),
                    holding_id: id.unwrap_or_default(),
                    person: name("persons", &person),
                    office: name("offices", &office),
                    valid_from: args::partial_date("--from", &from)?,
                    beginning: args::beginning("--how", &how)?,
                    cause: cause.map(|h| name("holdings", &h)).unwrap_or_default(),
                    term: term.map(|t| name("terms", &t)).unwrap_or_default(),
                    basis: basis.optional()?,
                    valid_until: until
                        .as_deref()
                        .map(|u| args::partial_date("--until", u))
                        .transpose()?
                        .unwrap_or_default(),
                    end_unknown: false,
                    end_reason: match until {
                        Some(_) => args::end_reason(
                            "--end-reason",
                            end_reason.as_deref().unwrap_or("term-end"),
                        )?,
                        None => 0,
                    },
                    end_basis: None,
                };
                print_write(
                    cx,
                    "recorded",
                    c.clone().start_holding(request).await?.into_inner().result,
                )
            }
            Self::End {
                holding,
                until,
                end_unknown,
                reason,
                basis,
            } => {
                let request = v1::EndHoldingRequest {
                    request_id: request_id(),
                    holding: name("holdings", &holding),
                    valid_until: until
                        .map(|u| args::partial_date("--until", &u))
                        .transpose()?
                        .unwrap_or_default(),
                    end_unknown,
                    reason: args::end_reason("--reason", &reason)?,
                    basis: basis.optional()?,
                };
                print_write(
                    cx,
                    "ended",
                    c.clone().end_holding(request).await?.into_inner().result,
                )
            }
            Self::Show(show) => show.run(cx).await,
        }
    }
}
