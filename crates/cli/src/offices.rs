//! `regctl offices`: create and abolish offices; show one and its holders.

use clap::Subcommand;
use registry_client::{request_id, v1};

use crate::args::{self, name, BasisArgs, CliError};
use crate::output::print_write;
use crate::read;
use crate::Context;

/// Offices.
#[derive(Debug, Subcommand)]
pub enum Offices {
    /// Create an office in a unit.
    #[command(
        after_help = "Example:\n  regctl offices create units/0193… \"Bí thư Đảng ủy xã\" --kind secretary --capacity sole --from 2020-01-01"
    )]
    Create {
        /// The unit.
        unit: String,
        /// The title as written.
        title: String,
        /// The kind: secretary, vice-secretary, chair, vice-chair, head, member, ...
        #[arg(long)]
        kind: String,
        /// How many may hold it on a day: sole, a number, or unbounded.
        #[arg(long, default_value = "sole")]
        capacity: String,
        /// Its first day.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        basis: BasisArgs,
        /// Use this UUID as the office's id.
        #[arg(long)]
        id: Option<String>,
    },
    /// An office on a day: title, kind, capacity, life, unit.
    #[command(after_help = "Example:\n  regctl offices show offices/0193… --at 2024-03-18")]
    Show(read::OfficeShow),
    /// Every holding of an office, in order of start.
    #[command(after_help = "Example:\n  regctl offices holders offices/0193…")]
    Holders(read::OfficeHolders),
    #[command(after_help = "Example:\n  regctl offices abolish offices/0193… --from 2025-07-01")]
    /// Abolish an office; its open holdings end on the same day.
    Abolish {
        /// The office.
        office: String,
        /// The first day without it.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        basis: BasisArgs,
    },
}

impl Offices {
    /// Runs the subcommand.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let c = cx.client.command();
        match self {
            Self::Create {
                unit,
                title,
                kind,
                capacity,
                from,
                basis,
                id,
            } => {
                let request = v1::CreateOfficeRequest {
                    request_id: request_id(),
                    office_id: id.unwrap_or_default(),
                    unit: name("units", &unit),
                    title,
                    kind: args::office_kind("--kind", &kind)?,
                    capacity: Some(args::capacity(&capacity)?),
                    valid_from: args::date("--from", &from)?,
                    basis: basis.optional()?,
                };
                print_write(
                    cx,
                    "created",
                    c.clone().create_office(request).await?.into_inner().result,
                )
            }
            Self::Abolish {
                office,
                from,
                basis,
            } => {
                let request = v1::AbolishOfficeRequest {
                    request_id: request_id(),
                    office: name("offices", &office),
                    valid_from: args::date("--from", &from)?,
                    basis: basis.optional()?,
                };
                print_write(
                    cx,
                    "abolished",
                    c.clone().abolish_office(request).await?.into_inner().result,
                )
            }
            Self::Show(show) => show.run(cx).await,
            Self::Holders(holders) => holders.run(cx).await,
        }
    }
}
