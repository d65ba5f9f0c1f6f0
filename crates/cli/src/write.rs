//! The subcommands that record: persons, units (and their structural changes), offices,
//! holdings, pilot models and terms. Each builds one request of the command service with a fresh
//! `request_id`, sends it, and prints the result (the new resource, the commit position and any
//! irregularity the registry flagged).

use clap::{Args, Subcommand};
use registry_client::{request_id, v1};

use crate::args::{self, name, BasisArgs, CliError};
use crate::output::{json, note, Answer, Format};
use crate::read;
use crate::Context;

/// Prints a write's result.
pub fn print_write(
    cx: &Context,
    verb: &str,
    result: Option<v1::WriteResult>,
) -> Result<(), CliError> {
    let result = result.ok_or_else(|| CliError::Unavailable("the server sent no result".into()))?;
    if cx.format == Format::Table {
        let again = if result.replayed {
            " (repeated request: nothing new recorded)"
        } else {
            ""
        };
        println!(
            "{verb} {} at position {}{again}",
            result.name, result.commit_position
        );
        for warning in &result.warnings {
            note(format!(
                "flagged for auditors: {} ({})",
                warning.description, warning.kind
            ));
        }
        return Ok(());
    }
    Answer {
        document: json(&result, "registry.v1.WriteResult"),
        items: vec![],
        headers: &[],
        rows: vec![],
    }
    .print(cx.format);
    Ok(())
}

/// Persons.
#[derive(Debug, Subcommand)]
pub enum Persons {
    /// Register a person.
    #[command(
        after_help = "Example:\n  regctl persons add \"Nguyễn Xuân Ký\" --birth 1962 --alias \"Ký\""
    )]
    Add {
        /// The full name, with its diacritics.
        name: String,
        /// Another name the person is known by (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// The birth date (a day, a month or a year).
        #[arg(long)]
        birth: Option<String>,
        /// Use this UUID as the person's id (minted when absent).
        #[arg(long)]
        id: Option<String>,
    },
    /// Record a change of name from a day.
    #[command(
        after_help = "Example:\n  regctl persons rename persons/0193… \"Nguyễn Thị B\" --from 2020-01-01"
    )]
    Rename {
        /// The person.
        person: String,
        /// The new name.
        name: String,
        /// The first day of the new name.
        #[arg(long)]
        from: String,
    },
    /// Record another name a person is known by.
    #[command(after_help = "Example:\n  regctl persons alias persons/0193… \"Ba Ký\"")]
    Alias {
        /// The person.
        person: String,
        /// The other name.
        alias: String,
    },
    /// A person's name on a day, and the offices held then.
    #[command(after_help = "Example:\n  regctl persons show persons/0193… --at 2024-03-18")]
    Show(read::PersonShow),
    /// Find persons by name, ignoring case, diacritics and Unicode normal form.
    #[command(after_help = "Example:\n  regctl persons search \"nguyen xuan ky\"")]
    Search {
        /// The name or part of it.
        query: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
}

impl Persons {
    /// Runs the subcommand.
    pub async fn run(self, cx: &Context) -> Result<(), CliError> {
        let c = cx.client.command();
        match self {
            Self::Add {
                name,
                aliases,
                birth,
                id,
            } => {
                let request = v1::RegisterPersonRequest {
                    request_id: request_id(),
                    person_id: id.unwrap_or_default(),
                    display_name: name,
                    aliases,
                    birth: birth
                        .map(|b| args::partial_date("--birth", &b))
                        .transpose()?
                        .unwrap_or_default(),
                };
                print_write(
                    cx,
                    "registered",
                    c.clone()
                        .register_person(request)
                        .await?
                        .into_inner()
                        .result,
                )
            }
            Self::Rename {
                person,
                name: new_name,
                from,
            } => {
                let request = v1::RenamePersonRequest {
                    request_id: request_id(),
                    person: name("persons", &person),
                    display_name: new_name,
                    valid_from: args::date("--from", &from)?,
                };
                print_write(
                    cx,
                    "renamed",
                    c.clone().rename_person(request).await?.into_inner().result,
                )
            }
            Self::Alias { person, alias } => {
                let request = v1::AddPersonAliasRequest {
                    request_id: request_id(),
                    person: name("persons", &person),
                    alias,
                };
                print_write(
                    cx,
                    "alias added to",
                    c.clone()
                        .add_person_alias(request)
                        .await?
                        .into_inner()
                        .result,
                )
            }
            Self::Show(show) => show.run(cx).await,
            Self::Search { query, limit } => read::search(cx, query, limit).await,
        }
    }
}

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
