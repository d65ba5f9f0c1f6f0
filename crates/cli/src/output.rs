//! How answers are shown: an aligned table for people (wide and combining characters measured by
//! display width), or the canonical proto3 JSON of the API's messages for programs (`json`: one
//! document; `jsonl`: one line per item of a list).
//!
//! JSON is produced by reflection over the API's own descriptor set (prost-reflect), so it is
//! exactly what a generic gRPC client would print: field names in lowerCamelCase, enums by name,
//! timestamps in RFC 3339.

use std::io::Write;
use std::sync::OnceLock;

use clap::ValueEnum;
use comfy_table::{presets, Table};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use registry_client::v1;

use crate::args::CliError;
use crate::Context;

/// The output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table.
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (lists: one per item).
    Jsonl,
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(registry_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("the built-in descriptor set is valid: {e}"))
    })
}

/// A message of the API as canonical proto3 JSON; `name` is its full name (`registry.v1.Holding`).
pub fn json<M: prost::Message>(message: &M, name: &str) -> serde_json::Value {
    let Some(descriptor) = pool().get_message_by_name(name) else {
        return serde_json::Value::Null;
    };
    let Ok(dynamic) = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()) else {
        return serde_json::Value::Null;
    };
    let options = SerializeOptions::new().skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or(serde_json::Value::Null)
}

/// Prints an answer: `rows` under `headers` as a table, or the message (`json`) or its `items`
/// (`jsonl`) as JSON.
pub struct Answer<'a> {
    /// The whole response as JSON.
    pub document: serde_json::Value,
    /// The items of a list, for `jsonl` (the document itself when empty).
    pub items: Vec<serde_json::Value>,
    /// Table headers.
    pub headers: &'a [&'a str],
    /// Table rows.
    pub rows: Vec<Vec<String>>,
}

impl Answer<'_> {
    /// Writes the answer to standard output in `format`.
    pub fn print(self, format: Format) {
        let mut out = std::io::stdout().lock();
        let _ = match format {
            Format::Table => writeln!(out, "{}", table(self.headers, self.rows)),
            Format::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&self.document).unwrap_or_default()
            ),
            Format::Jsonl if self.items.is_empty() => writeln!(out, "{}", self.document),
            Format::Jsonl => self
                .items
                .iter()
                .try_for_each(|item| writeln!(out, "{item}")),
        };
    }
}

/// An aligned table without borders but a header rule.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// Prints a one-line message for people to standard error (never mixed into JSON output).
pub fn note(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

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
