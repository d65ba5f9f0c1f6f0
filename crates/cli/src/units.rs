//! `regctl units`: establish, rename, move, merge, split and dissolve units (each structural
//! change with the fate of every office and child stated); show one, its tree, its lineage.

use clap::{Args, Subcommand};
use registry_client::{request_id, v1};

use crate::args::{self, name, BasisArgs, CliError};
use crate::output::print_write;
use crate::read;
use crate::Context;

/// Where a new unit sits and what it is.
#[derive(Args, Clone, Debug)]
pub struct NewUnitArgs {
    /// The kind: party-committee, peoples-council, peoples-committee, fatherland-front,
    /// socio-political-organisation, advisory-agency, administrative-area, ...
    #[arg(long)]
    pub kind: Option<String>,
    /// The level: central, province, district, commune.
    #[arg(long)]
    pub level: Option<String>,
    /// A parent unit (repeatable: a shared agency serves several bodies).
    #[arg(long = "parent")]
    pub parents: Vec<String>,
}

impl NewUnitArgs {
    fn new_unit(&self, display_name: String) -> Result<v1::NewUnit, CliError> {
        Ok(v1::NewUnit {
            unit_id: uuid::Uuid::now_v7().to_string(),
            kind: args::unit_kind(
                "--kind",
                self.kind
                    .as_deref()
                    .ok_or_else(|| CliError::Usage("a new unit needs --kind".into()))?,
            )?,
            level: args::level(
                "--level",
                self.level
                    .as_deref()
                    .ok_or_else(|| CliError::Usage("a new unit needs --level".into()))?,
            )?,
            display_name,
            parents: self.parents.iter().map(|p| name("units", p)).collect(),
        })
    }
}

/// The fates of offices and children in a structural change.
#[derive(Args, Clone, Debug, Default)]
pub struct FateArgs {
    /// An office that continues: OFFICE=UNIT, where UNIT is an existing successor or `new`
    /// (`new:2` for the second new unit of a split). Repeatable.
    #[arg(long = "carry", value_name = "OFFICE=UNIT")]
    pub carry: Vec<String>,
    /// An office that ends with its unit (its open holdings end). Repeatable.
    #[arg(long = "abolish", value_name = "OFFICE")]
    pub abolish: Vec<String>,
    /// Abolish every office of the ending units that is not carried.
    #[arg(long)]
    pub abolish_rest: bool,
    /// A unit under an ending unit and its new parents: UNIT=PARENT[,PARENT] (`new`, `new:2`
    /// name new units). Repeatable.
    #[arg(long = "child", value_name = "UNIT=PARENTS")]
    pub children: Vec<String>,
}

/// Resolves `new`, `new:N` or a unit name against the new successors' ids.
fn successor_ref(text: &str, new_ids: &[String]) -> Result<String, CliError> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("new") {
        let index = match rest.strip_prefix(':') {
            None if rest.is_empty() => 1,
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| CliError::Usage(format!("{text:?}: write new or new:N")))?,
            None => return Ok(name("units", text)),
        };
        return new_ids
            .get(index.wrapping_sub(1))
            .map(|id| format!("units/{id}"))
            .ok_or_else(|| {
                CliError::Usage(format!("{text:?}: there is no new unit number {index}"))
            });
    }
    Ok(name("units", text))
}

impl FateArgs {
    async fn fates(
        &self,
        cx: &Context,
        predecessors: &[String],
        on: &str,
        new_ids: &[String],
    ) -> Result<(Vec<v1::OfficeFate>, Vec<v1::ChildPlacement>), CliError> {
        let mut offices = Vec::new();
        for carry in &self.carry {
            let (office, unit) = carry
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--carry {carry:?}: write OFFICE=UNIT")))?;
            offices.push(v1::OfficeFate {
                office: name("offices", office),
                carry_to: successor_ref(unit, new_ids)?,
            });
        }
        for office in &self.abolish {
            offices.push(v1::OfficeFate {
                office: name("offices", office),
                carry_to: String::new(),
            });
        }
        if self.abolish_rest {
            for unit in predecessors {
                let shown = cx
                    .client
                    .query()
                    .get_unit(v1::GetUnitRequest {
                        name: unit.clone(),
                        date: on.to_owned(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                for office in shown.unit.map(|u| u.offices).unwrap_or_default() {
                    if !offices.iter().any(|f| f.office == office) {
                        offices.push(v1::OfficeFate {
                            office,
                            carry_to: String::new(),
                        });
                    }
                }
            }
        }
        let mut children = Vec::new();
        for child in &self.children {
            let (unit, parents) = child.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("--child {child:?}: write UNIT=PARENT[,PARENT]"))
            })?;
            children.push(v1::ChildPlacement {
                unit: name("units", unit),
                parents: parents
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| successor_ref(p, new_ids))
                    .collect::<Result<_, _>>()?,
            });
        }
        Ok((offices, children))
    }
}

/// Units.
#[derive(Debug, Subcommand)]
pub enum Units {
    /// Establish a unit.
    #[command(
        after_help = "Example:\n  regctl units establish \"Xã Cộng Hòa\" --kind administrative-area --level commune \\\n    --parent units/0193… --from 1963-10-30 --basis 1/NQ --basis-date 1963-10-01 --issuer \"Hội đồng Chính phủ\""
    )]
    Establish {
        /// Its name.
        name: String,
        #[command(flatten)]
        unit: NewUnitArgs,
        /// Its first day.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        basis: BasisArgs,
        /// Use this UUID as the unit's id.
        #[arg(long)]
        id: Option<String>,
    },
    #[command(
        after_help = "Example:\n  regctl units rename units/0193… \"Phường Cẩm Phả\" --from 2025-07-01 --basis 1679/NQ-UBTVQH15 --basis-date 2025-06-16 --issuer \"Ủy ban Thường vụ Quốc hội\""
    )]
    /// Rename a unit from a day.
    Rename {
        /// The unit.
        unit: String,
        /// The new name.
        name: String,
        /// The first day of the new name.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        basis: BasisArgs,
    },
    #[command(
        after_help = "Example:\n  regctl units move units/0193… --parent units/PROVINCE --from 2025-07-01 --basis 1679/NQ-UBTVQH15 --basis-date 2025-06-16 --issuer \"Ủy ban Thường vụ Quốc hội\""
    )]
    /// Place a unit under other parents from a day.
    Move {
        /// The unit.
        unit: String,
        /// A new parent (repeatable; replaces the old parents).
        #[arg(long = "parent", required = true)]
        parents: Vec<String>,
        /// The first day under the new parents.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        basis: BasisArgs,
    },
    /// Merge units into a new unit (`--into-new`) or into an existing one (`--into`).
    #[command(
        after_help = "Example (1 July 2025):\n  regctl units merge units/A units/B --into-new \"Phường Cẩm Phả\" --kind administrative-area \\\n    --level commune --parent units/P --on 2025-07-01 --basis 1679/NQ-UBTVQH15 --basis-date 2025-06-16 \\\n    --issuer \"Ủy ban Thường vụ Quốc hội\" --child units/A-party=new --child units/B-party=new"
    )]
    Merge {
        /// The units that end.
        #[arg(required = true)]
        predecessors: Vec<String>,
        /// The name of the new unit that continues them.
        #[arg(long, conflicts_with = "into", required_unless_present = "into")]
        into_new: Option<String>,
        /// The existing unit that absorbs them.
        #[arg(long)]
        into: Option<String>,
        #[command(flatten)]
        unit: NewUnitArgs,
        /// The first day of the new structure.
        #[arg(long)]
        on: String,
        #[command(flatten)]
        basis: BasisArgs,
        #[command(flatten)]
        fates: FateArgs,
    },
    #[command(
        after_help = "Example:\n  regctl units split units/0193… --new \"Phường Bắc\" --new \"Phường Nam\" --kind administrative-area --level commune \\\n    --parent units/PROVINCE --on 2026-01-01 --child units/C=new:1 --abolish-rest --basis 5/NQ --basis-date 2025-12-01 --issuer \"HĐND tỉnh\""
    )]
    /// Split a unit into new units (`--new NAME`, repeatable) and/or existing ones (`--to`).
    Split {
        /// The unit that ends.
        predecessor: String,
        /// A new unit (repeatable), with --kind, --level, --parent shared by all new units.
        #[arg(long = "new")]
        new: Vec<String>,
        /// An existing unit that takes part (repeatable).
        #[arg(long = "to")]
        to: Vec<String>,
        #[command(flatten)]
        unit: NewUnitArgs,
        /// The first day of the new structure.
        #[arg(long)]
        on: String,
        #[command(flatten)]
        basis: BasisArgs,
        #[command(flatten)]
        fates: FateArgs,
    },
    #[command(
        after_help = "Example:\n  regctl units dissolve units/0193… --on 2025-07-01 --abolish-rest --basis 1679/NQ-UBTVQH15 --basis-date 2025-06-16 --issuer \"Ủy ban Thường vụ Quốc hội\""
    )]
    /// Dissolve a unit: nothing continues it.
    Dissolve {
        /// The unit.
        unit: String,
        /// Its first day without it.
        #[arg(long)]
        on: String,
        #[command(flatten)]
        basis: BasisArgs,
        #[command(flatten)]
        fates: FateArgs,
    },
    /// A unit on a day: name, parents, children, offices.
    #[command(after_help = "Example:\n  regctl units show units/0193… --at 2019-05-01")]
    Show(read::UnitShow),
    /// The units of a jurisdiction on a day.
    #[command(after_help = "Example:\n  regctl units tree units/0193… --at 2024-03-18")]
    Tree(read::UnitTree),
    /// Predecessors and successors through merges and splits ("what became of it").
    #[command(after_help = "Example:\n  regctl units lineage units/0193…")]
    Lineage(read::UnitLineage),
}

impl Units {
    /// Runs the subcommand.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let c = cx.client.command();
        match self {
            Self::Establish {
                name: display_name,
                unit,
                from,
                basis,
                id,
            } => {
                let new = unit.new_unit(display_name)?;
                let request = v1::EstablishUnitRequest {
                    request_id: request_id(),
                    unit_id: id.unwrap_or_default(),
                    kind: new.kind,
                    level: new.level,
                    display_name: new.display_name,
                    parents: new.parents,
                    valid_from: args::date("--from", &from)?,
                    basis: Some(basis.required()?),
                };
                print_write(
                    cx,
                    "established",
                    c.clone().establish_unit(request).await?.into_inner().result,
                )
            }
            Self::Rename {
                unit,
                name: new_name,
                from,
                basis,
            } => {
                let request = v1::RenameUnitRequest {
                    request_id: request_id(),
                    unit: name("units", &unit),
                    display_name: new_name,
                    valid_from: args::date("--from", &from)?,
                    basis: Some(basis.required()?),
                };
                print_write(
                    cx,
                    "renamed",
                    c.clone().rename_unit(request).await?.into_inner().result,
                )
            }
            Self::Move {
                unit,
                parents,
                from,
                basis,
            } => {
                let request = v1::MoveUnitRequest {
                    request_id: request_id(),
                    unit: name("units", &unit),
                    parents: parents.iter().map(|p| name("units", p)).collect(),
                    valid_from: args::date("--from", &from)?,
                    basis: Some(basis.required()?),
                };
                print_write(
                    cx,
                    "moved",
                    c.clone().move_unit(request).await?.into_inner().result,
                )
            }
            Self::Merge {
                predecessors,
                into_new,
                into,
                unit,
                on,
                basis,
                fates,
            } => {
                let (ending, successors, new_ids) = match (into_new, into) {
                    (Some(new_name), _) => {
                        let new = unit.new_unit(new_name)?;
                        let id = new.unit_id.clone();
                        (v1::UnitEnding::Merged, vec![successor_new(new)], vec![id])
                    }
                    (None, Some(existing)) => (
                        v1::UnitEnding::Absorbed,
                        vec![successor_existing(&existing)],
                        vec![],
                    ),
                    (None, None) => {
                        return Err(CliError::Usage(
                            "say where they merge: --into-new NAME or --into UNIT".into(),
                        ))
                    }
                };
                reorganise(
                    cx,
                    ending,
                    predecessors,
                    successors,
                    new_ids,
                    &on,
                    &basis,
                    &fates,
                    "merged into",
                )
                .await
            }
            Self::Split {
                predecessor,
                new,
                to,
                unit,
                on,
                basis,
                fates,
            } => {
                let mut successors = Vec::new();
                let mut new_ids = Vec::new();
                if !new.is_empty() {
                    for new_name in new {
                        let new = unit.new_unit(new_name)?;
                        new_ids.push(new.unit_id.clone());
                        successors.push(successor_new(new));
                    }
                }
                successors.extend(to.iter().map(|u| successor_existing(u)));
                reorganise(
                    cx,
                    v1::UnitEnding::Split,
                    vec![predecessor],
                    successors,
                    new_ids,
                    &on,
                    &basis,
                    &fates,
                    "split into",
                )
                .await
            }
            Self::Dissolve {
                unit,
                on,
                basis,
                fates,
            } => {
                reorganise(
                    cx,
                    v1::UnitEnding::Dissolved,
                    vec![unit],
                    vec![],
                    vec![],
                    &on,
                    &basis,
                    &fates,
                    "dissolved",
                )
                .await
            }
            Self::Show(show) => show.run(cx).await,
            Self::Tree(tree) => tree.run(cx).await,
            Self::Lineage(lineage) => lineage.run(cx).await,
        }
    }
}

fn successor_new(new: v1::NewUnit) -> v1::Successor {
    v1::Successor {
        successor: Some(v1::successor::Successor::NewUnit(new)),
    }
}

fn successor_existing(unit: &str) -> v1::Successor {
    v1::Successor {
        successor: Some(v1::successor::Successor::Existing(name("units", unit))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn reorganise(
    cx: &Context,
    ending: v1::UnitEnding,
    predecessors: Vec<String>,
    successors: Vec<v1::Successor>,
    new_ids: Vec<String>,
    on: &str,
    basis: &BasisArgs,
    fates: &FateArgs,
    verb: &str,
) -> Result<(), CliError> {
    let predecessors: Vec<String> = predecessors.iter().map(|p| name("units", p)).collect();
    let on = args::date("--on", on)?;
    let (offices, children) = fates.fates(cx, &predecessors, &on, &new_ids).await?;
    let request = v1::ReorganiseUnitsRequest {
        request_id: request_id(),
        ending: ending as i32,
        predecessors,
        successors,
        valid_from: on,
        basis: Some(basis.required()?),
        offices,
        children,
    };
    print_write(
        cx,
        verb,
        cx.client
            .command()
            .reorganise_units(request)
            .await?
            .into_inner()
            .result,
    )
}
