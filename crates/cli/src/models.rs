//! `regctl models`: define pilot models, adopt and withdraw them in units; their coverage.

use clap::Subcommand;
use registry_client::{request_id, v1};

use crate::args::{self, name, BasisArgs, CliError};
use crate::output::print_write;
use crate::read;
use crate::Context;

/// Pilot models.
#[derive(Debug, Subcommand)]
pub enum Models {
    /// Record a pilot model: a concurrent-offices arrangement (`--role`, twice or more) or a
    /// shared unit (`--shared-unit KIND --serves KIND...`).
    #[command(
        after_help = "Example:\n  regctl models define \"Phó Bí thư đồng thời là Chủ tịch MTTQ xã\" \\\n    --role party-committee:vice-secretary --role fatherland-front:chair \\\n    --basis \"Kết luận 1/TW\" --basis-date 2019-01-01 --issuer \"Bộ Chính trị\""
    )]
    Define {
        /// Its name.
        name: String,
        /// A role held concurrently: UNIT_KIND:OFFICE_KIND (repeatable).
        #[arg(long = "role", value_name = "UNIT_KIND:OFFICE_KIND")]
        roles: Vec<String>,
        /// The kind of a unit shared by several bodies.
        #[arg(long, conflicts_with = "roles")]
        shared_unit: Option<String>,
        /// A kind of body the shared unit serves (repeatable).
        #[arg(long = "serves")]
        serves: Vec<String>,
        #[command(flatten)]
        basis: BasisArgs,
        /// Use this UUID as the model's id.
        #[arg(long)]
        id: Option<String>,
    },
    #[command(
        after_help = "Example:\n  regctl models adopt models/M units/COMMUNE --from 2019-01-01 --basis 3/QĐ-TU --basis-date 2018-12-20 --issuer \"Tỉnh ủy Quảng Ninh\""
    )]
    /// Record that a unit adopted a pilot model.
    Adopt {
        /// The model.
        model: String,
        /// The adopting unit.
        unit: String,
        /// The first day it applies.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        basis: BasisArgs,
    },
    #[command(
        after_help = "Example:\n  regctl models withdraw adoptions/0193… --from 2025-07-01 --basis 4/QĐ-TU --basis-date 2025-06-20 --issuer \"Tỉnh ủy Quảng Ninh\""
    )]
    /// Record that a unit stopped applying a model.
    Withdraw {
        /// The adoption.
        adoption: String,
        /// The first day it no longer applies.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        basis: BasisArgs,
    },
    /// How many units of a level in a jurisdiction apply the model on a day.
    #[command(
        after_help = "Example:\n  regctl models coverage models/M units/PROVINCE --level commune --at 2024-03-18"
    )]
    Coverage(read::Coverage),
}

impl Models {
    /// Runs the subcommand.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let c = cx.client.command();
        match self {
            Self::Define {
                name: display_name,
                roles,
                shared_unit,
                serves,
                basis,
                id,
            } => {
                let kind = match shared_unit {
                    Some(shared) => v1::arrangement::Kind::SharedUnit(v1::SharedUnit {
                        unit_kind: args::unit_kind("--shared-unit", &shared)?,
                        serves: serves
                            .iter()
                            .map(|s| args::unit_kind("--serves", s))
                            .collect::<Result<_, _>>()?,
                    }),
                    None => v1::arrangement::Kind::ConcurrentOffices(v1::ConcurrentOffices {
                        roles: roles
                            .iter()
                            .map(|r| {
                                let (unit, office) = r.split_once(':').ok_or_else(|| {
                                    CliError::Usage(format!(
                                        "--role {r:?}: write UNIT_KIND:OFFICE_KIND"
                                    ))
                                })?;
                                Ok(v1::Role {
                                    unit_kind: args::unit_kind("--role", unit)?,
                                    office_kind: args::office_kind("--role", office)?,
                                })
                            })
                            .collect::<Result<_, CliError>>()?,
                    }),
                };
                let request = v1::DefineModelRequest {
                    request_id: request_id(),
                    model_id: id.unwrap_or_default(),
                    display_name,
                    arrangement: Some(v1::Arrangement { kind: Some(kind) }),
                    authorised_by: Some(basis.required()?),
                };
                print_write(
                    cx,
                    "defined",
                    c.clone().define_model(request).await?.into_inner().result,
                )
            }
            Self::Adopt {
                model,
                unit,
                from,
                basis,
            } => {
                let request = v1::AdoptModelRequest {
                    request_id: request_id(),
                    adoption_id: String::new(),
                    model: name("models", &model),
                    unit: name("units", &unit),
                    valid_from: args::date("--from", &from)?,
                    basis: Some(basis.required()?),
                };
                print_write(
                    cx,
                    "adopted as",
                    c.clone().adopt_model(request).await?.into_inner().result,
                )
            }
            Self::Withdraw {
                adoption,
                from,
                basis,
            } => {
                let request = v1::WithdrawModelRequest {
                    request_id: request_id(),
                    adoption: name("adoptions", &adoption),
                    valid_from: args::date("--from", &from)?,
                    basis: Some(basis.required()?),
                };
                print_write(
                    cx,
                    "withdrawn",
                    c.clone().withdraw_model(request).await?.into_inner().result,
                )
            }
            Self::Coverage(coverage) => coverage.run(cx).await,
        }
    }
}
