//! `regctl persons`: register, rename and alias persons; show one, search by name (the views
//! are in `read`).

use clap::Subcommand;
use registry_client::{request_id, v1};

use crate::args::{self, name, CliError};
use crate::output::print_write;
use crate::read;
use crate::Context;

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
