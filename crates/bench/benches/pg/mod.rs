//! PostgreSQL 15 holding the same registry, given its best: every table loaded with binary
//! `COPY` into bare tables, then the keys, the EXCLUDE constraint (btree_gist, against two
//! holders of a sole office on one day) and the GiST indexes built over the loaded rows, then
//! `ANALYZE`; load and index times are reported apart.
//!
//! - `holdings`: a row per holding, with a `daterange` generated from its days (Q1, Q2, W1, and
//!   Q4's lighter form: the office's holding rows);
//! - `events`: every event of the registry stream with the payload and metadata registryd
//!   stores and shows (Q4's like-for-like form), and `resource_events` saying which events
//!   concern which resource (those naming it and, for a person or an office, those about their
//!   holdings: registryd's audit index);
//! - for Q3, units, their parents and offices' placements over time, and `unit_ancestors`, a
//!   materialised path (every ancestor of a unit, with the days it was one), so that the
//!   communes of a province are one index scan instead of a recursive query.
//!
//! Statements are prepared on pooled connections (one per load connection; tokio-postgres
//! pipelines the requests in flight).

use std::collections::HashMap;
use std::error::Error;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use registry_domain::{Capacity, Date, EntityRef, Event, HoldingId, Registry, Span, UnitId};
use registry_testkit::RecordedFact;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

/// A day as PostgreSQL's binary `date`: days since 2000-01-01.
#[derive(Debug, Clone, Copy)]
pub struct Day(pub Date);

/// The Julian day number of 2000-01-01, PostgreSQL's day zero.
const PG_EPOCH_JULIAN: i32 = 2_451_545;

impl ToSql for Day {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_i32(self.0.julian_day() - PG_EPOCH_JULIAN);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }

    to_sql_checked!();
}

/// A pooled connection with its prepared statements.
pub struct Prepared {
    pub client: Client,
    /// Q1: the holders of an office on a day.
    pub q1: Statement,
    /// Q2: the offices of a person on a day.
    pub q2: Statement,
    /// Q3: the communes of a province applying the Vice-Secretary-and-Front-Chair model.
    pub q3: Statement,
    /// Q3's text, to have it planned for each call's parameters.
    pub q3_text: String,
    /// Q4 like for like: the office's events with their provenance, first page (100).
    pub q4: Statement,
    /// Q4's lighter form: the office's holding rows.
    pub q4_rows: Statement,
    /// Q1 for a batch of (office, day) questions in one statement.
    pub q1_batch: Statement,
    /// Q2 for a batch of (person, day) questions in one statement.
    pub q2_batch: Statement,
}

/// How long each step of the load took, in seconds.
#[derive(Default, Debug)]
pub struct Timings {
    /// `COPY` of every table.
    pub copy: f64,
    /// Keys, the EXCLUDE constraint and the indexes, built after the load.
    pub index: f64,
    /// `ANALYZE` of every table.
    pub analyze: f64,
}

pub struct Comparison {
    pub clients: Vec<Arc<Prepared>>,
    pub pids: Vec<u32>,
    pub rows: usize,
    pub events: usize,
    pub timings: Timings,
    url: String,
    schema: String,
}

pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A row's days: copied as two dates (a range has no binary form in tokio-postgres), kept as
/// the `daterange` the queries and indexes use.
const DAYS: &str = "starts date NOT NULL, ends date, \
    during daterange GENERATED ALWAYS AS (daterange(starts, ends, '[)')) STORED";

/// The columns Q1, Q2 and Q4's lighter form return.
const HOLDING_COLUMNS: &str =
    "holding, person, person_name, office_title, lower(during), upper(during), basis";

/// The columns of an event as registryd's history shows it.
const EVENT_COLUMNS: &str =
    "e.position, e.revision, e.id, e.event_type, e.schema_version, e.recorded_at, e.actor, e.request_id, e.payload, e.subjects";

impl Comparison {
    /// Loads `registry` and its events (`facts`, in feed order: the revision is the index) into
    /// a schema of its own, and opens `connections` connections with prepared statements.
    pub async fn load(
        url: &str,
        registry: &Registry,
        facts: &[RecordedFact],
        connections: usize,
    ) -> Result<Self, tokio_postgres::Error> {
        let schema = format!("bench_{}", std::process::id());
        let admin = connect(url).await?;
        admin
            .batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS btree_gist;
                 DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.holdings (
                     holding uuid NOT NULL, person uuid NOT NULL, office uuid NOT NULL,
                     sole boolean NOT NULL, {DAYS},
                     person_name text NOT NULL, office_title text NOT NULL, basis text);
                 CREATE TABLE {schema}.events (
                     position text NOT NULL, revision bigint NOT NULL, id uuid NOT NULL,
                     event_type text NOT NULL, schema_version int NOT NULL,
                     recorded_at bigint NOT NULL, actor text NOT NULL, request_id text,
                     payload text NOT NULL, subjects text[] NOT NULL);
                 CREATE TABLE {schema}.resource_events (resource uuid NOT NULL, revision bigint NOT NULL);
                 CREATE TABLE {schema}.units (unit uuid NOT NULL, kind text NOT NULL, level text NOT NULL, {DAYS});
                 CREATE TABLE {schema}.unit_parents (unit uuid NOT NULL, parent uuid NOT NULL, {DAYS});
                 CREATE TABLE {schema}.unit_ancestors (unit uuid NOT NULL, ancestor uuid NOT NULL, {DAYS});
                 CREATE TABLE {schema}.offices (office uuid NOT NULL, kind text NOT NULL, {DAYS});
                 CREATE TABLE {schema}.office_units (office uuid NOT NULL, unit uuid NOT NULL, {DAYS});"
            ))
            .await?;
        let mut timings = Timings::default();
        let started = Instant::now();
        copy_holdings(&admin, &schema, registry).await?;
        copy_events(&admin, &schema, facts).await?;
        copy_structure(&admin, &schema, registry).await?;
        timings.copy = started.elapsed().as_secs_f64();
        let started = Instant::now();
        admin
            .batch_execute(&format!(
                "ALTER TABLE {schema}.holdings ADD PRIMARY KEY (holding);
                 ALTER TABLE {schema}.holdings ADD EXCLUDE USING gist (office WITH =, during WITH &&) WHERE (sole);
                 CREATE INDEX ON {schema}.holdings USING gist (office, during);
                 CREATE INDEX ON {schema}.holdings USING gist (person, during);
                 ALTER TABLE {schema}.events ADD PRIMARY KEY (revision);
                 CREATE INDEX ON {schema}.resource_events (resource, revision);
                 ALTER TABLE {schema}.units ADD PRIMARY KEY (unit);
                 ALTER TABLE {schema}.offices ADD PRIMARY KEY (office);
                 CREATE INDEX ON {schema}.unit_parents USING gist (parent, during);
                 CREATE INDEX ON {schema}.unit_ancestors USING gist (ancestor, during);
                 CREATE INDEX ON {schema}.office_units USING gist (unit, during);"
            ))
            .await?;
        timings.index = started.elapsed().as_secs_f64();
        let started = Instant::now();
        admin.batch_execute(&format!("ANALYZE {schema}.holdings; ANALYZE {schema}.events; ANALYZE {schema}.resource_events; ANALYZE {schema}.units; ANALYZE {schema}.unit_parents; ANALYZE {schema}.unit_ancestors; ANALYZE {schema}.offices; ANALYZE {schema}.office_units;")).await?;
        timings.analyze = started.elapsed().as_secs_f64();
        let count = |table: &'static str| {
            let (admin, schema) = (&admin, &schema);
            async move {
                let n: i64 = admin
                    .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
                    .await?
                    .get(0);
                Ok::<_, tokio_postgres::Error>(n as usize)
            }
        };
        let rows = count("holdings").await?;
        let events = count("events").await?;
        let mut clients = Vec::new();
        let mut pids = Vec::new();
        for _ in 0..connections {
            let client = connect(url).await?;
            pids.push(backend_pid(&client).await?);
            let q1 = client
                .prepare(&format!("SELECT {HOLDING_COLUMNS} FROM {schema}.holdings WHERE office = $1 AND during @> $2::text::date"))
                .await?;
            let q2 = client
                .prepare(&format!("SELECT {HOLDING_COLUMNS} FROM {schema}.holdings WHERE person = $1 AND during @> $2::text::date"))
                .await?;
            let q4_rows = client
                .prepare(&format!("SELECT {HOLDING_COLUMNS} FROM {schema}.holdings WHERE office = $1 ORDER BY lower(during)"))
                .await?;
            let q4 = client
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM {schema}.resource_events r
                     JOIN {schema}.events e ON e.revision = r.revision
                     WHERE r.resource = $1 ORDER BY r.revision LIMIT 100"
                ))
                .await?;
            let q3 = client.prepare(&q3_sql(&schema)).await?;
            // A batch: the questions as two arrays, joined to the table by the same index,
            // each answer row tagged with its question's place.
            let batch = |key: &str| {
                format!(
                    "SELECT q.i, {HOLDING_COLUMNS}
                     FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS q(subject, day, i)
                     JOIN {schema}.holdings h ON h.{key} = q.subject AND h.during @> q.day::date"
                )
            };
            let q1_batch = client.prepare(&batch("office")).await?;
            let q2_batch = client.prepare(&batch("person")).await?;
            clients.push(Arc::new(Prepared {
                client,
                q1,
                q2,
                q3,
                q3_text: q3_sql(&schema),
                q4,
                q4_rows,
                q1_batch,
                q2_batch,
            }));
        }
        Ok(Self {
            clients,
            pids,
            rows,
            events,
            timings,
            url: url.to_owned(),
            schema,
        })
    }

    /// The revisions PostgreSQL's `resource_events` lists for a resource, all of them: to check
    /// it answers Q4 with the events registryd does.
    pub async fn revisions_of(
        &self,
        resource: uuid::Uuid,
    ) -> Result<Vec<u64>, tokio_postgres::Error> {
        let rows = self.clients[0]
            .client
            .query(
                &format!(
                    "SELECT revision FROM {}.resource_events WHERE resource = $1 ORDER BY revision",
                    self.schema
                ),
                &[&resource],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
    }

    /// Q3's plan for a province on a day, as `EXPLAIN (ANALYZE, BUFFERS)` prints it.
    pub async fn q3_plan(
        &self,
        province: UnitId,
        day: &str,
    ) -> Result<String, tokio_postgres::Error> {
        let sql = q3_sql(&self.schema)
            .replace("$1::uuid", &format!("'{}'::uuid", province.uuid()))
            .replace("$2::text::date", &format!("'{day}'::date"));
        let rows = self.clients[0]
            .client
            .query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// `n` more connections, each with a prepared insert of a holding into the temporal
    /// table (the EXCLUDE constraint checks a sole office's holders, as the registry's
    /// capacity rule does), for W1; and their backends' pids.
    pub async fn writers(
        &self,
        n: usize,
    ) -> Result<(Vec<Arc<(Client, Statement)>>, Vec<u32>), tokio_postgres::Error> {
        let mut writers = Vec::new();
        let mut pids = Vec::new();
        for _ in 0..n {
            let client = connect(&self.url).await?;
            pids.push(backend_pid(&client).await?);
            let insert = client
                .prepare(&format!(
                    "INSERT INTO {}.holdings (holding, person, office, sole, starts, ends, person_name, office_title, basis)
                     VALUES ($1, $2, $3, true, $4::text::date, $5::text::date, $6, $7, NULL)",
                    self.schema
                ))
                .await?;
            writers.push(Arc::new((client, insert)));
        }
        Ok((writers, pids))
    }

    pub async fn drop_schema(&self) {
        if let Ok(admin) = connect(&self.url).await {
            let _ = admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
                .await;
        }
    }
}

/// What a restart of PostgreSQL costs before it serves again, on a server of the bench's own
/// holding the same registry (the machine's own is never restarted).
pub struct Restarts {
    /// The load into the fresh server, as [`Comparison::load`] times it.
    pub load: Timings,
    /// `pg_ctl stop -m fast` (a checkpoint, then exit), in seconds.
    pub stop: f64,
    /// From `pg_ctl start` after that stop to the first Q1 answered on a new connection.
    pub after_stop: f64,
    /// The same after `pg_ctl stop -m immediate` (no checkpoint: crash recovery from the WAL).
    pub after_crash: f64,
}

/// Loads `registry` into a PostgreSQL server of its own, then stops and starts it twice (a
/// planned restart, then a crash), timing each start until Q1 about `office` on `day` is
/// answered.
pub async fn restarts(
    registry: &Registry,
    facts: &[RecordedFact],
    office: uuid::Uuid,
    day: &str,
) -> Result<Restarts, Box<dyn Error>> {
    let server = registry_testkit::pgcluster::Single::start()?;
    let url = server.url();
    let loaded = Comparison::load(&url, registry, facts, 1).await?;
    let q1 = format!(
        "SELECT {HOLDING_COLUMNS} FROM {}.holdings WHERE office = $1 AND during @> $2::text::date",
        loaded.schema
    );
    // Its connections close here: a stop waits for none.
    let Comparison { timings: load, .. } = loaded;
    let answered = || async {
        let client = connect(&url).await?;
        client.query(&q1, &[&office, &day]).await?;
        Ok::<_, tokio_postgres::Error>(())
    };
    answered().await?;
    let started = Instant::now();
    server.stop("fast")?;
    let stop = started.elapsed().as_secs_f64();
    let started = Instant::now();
    server.start_again()?;
    answered().await?;
    let after_stop = started.elapsed().as_secs_f64();
    server.stop("immediate")?;
    let started = Instant::now();
    server.start_again()?;
    answered().await?;
    let after_crash = started.elapsed().as_secs_f64();
    Ok(Restarts {
        load,
        stop,
        after_stop,
        after_crash,
    })
}

async fn backend_pid(client: &Client) -> Result<u32, tokio_postgres::Error> {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    Ok(pid as u32)
}

/// Binary `COPY` into `table` (`columns` of `types`), one row per item of `rows`.
async fn copy<I, R>(
    admin: &Client,
    table: &str,
    columns: &str,
    types: &[Type],
    rows: I,
) -> Result<(), tokio_postgres::Error>
where
    I: IntoIterator<Item = R>,
    R: Row,
{
    let sink = admin
        .copy_in(&format!(
            "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, types));
    for row in rows {
        writer.as_mut().write(&row.values()).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// A row to copy: its values in the table's column order.
trait Row {
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;
}

macro_rules! row {
    ($($t:ident),*) => {
        #[allow(non_snake_case)]
        impl<$($t: ToSql + Sync),*> Row for ($($t,)*) {
            fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
                let ($($t,)*) = self;
                vec![$($t as &(dyn ToSql + Sync)),*]
            }
        }
    };
}
row!(A, B);
row!(A, B, C, D);
row!(A, B, C, D, E);
row!(A, B, C, D, E, F, G, H, I);
row!(A, B, C, D, E, F, G, H, I, J);

fn ends(span: Span) -> Option<Day> {
    span.end.map(Day)
}

async fn copy_holdings(
    admin: &Client,
    schema: &str,
    registry: &Registry,
) -> Result<(), tokio_postgres::Error> {
    let rows = registry.holdings().filter_map(|(id, h)| {
        let office = registry.office(h.office)?;
        let span = h.span();
        if span.is_empty() {
            return None;
        }
        Some((
            id.uuid(),
            h.person.uuid(),
            h.office.uuid(),
            office.capacity == Capacity::Sole,
            Day(span.start),
            ends(span),
            registry
                .person(h.person)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            office.title.clone(),
            h.basis.as_ref().map(|b| b.number.clone()),
        ))
    });
    copy(
        admin,
        &format!("{schema}.holdings"),
        "holding, person, office, sole, starts, ends, person_name, office_title, basis",
        &[
            Type::UUID,
            Type::UUID,
            Type::UUID,
            Type::BOOL,
            Type::DATE,
            Type::DATE,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
        ],
        rows,
    )
    .await
}

/// The events as the bench's store holds them (`registry_bench::load_store`: the payload the
/// domain encodes, actor `registry-bench`, no request id; the position is the revision + 1),
/// and which resources each concerns.
async fn copy_events(
    admin: &Client,
    schema: &str,
    facts: &[RecordedFact],
) -> Result<(), tokio_postgres::Error> {
    let rows = facts.iter().enumerate().map(|(revision, fact)| {
        let subjects: Vec<String> = fact
            .event
            .subjects()
            .iter()
            .map(ToString::to_string)
            .collect();
        (
            (revision + 1).to_string(),
            revision as i64,
            uuid::Uuid::now_v7(),
            fact.event.type_name().to_owned(),
            i32::from(fact.event.schema_version()),
            fact.recorded_at,
            "registry-bench",
            None::<String>,
            String::from_utf8(fact.event.encode()).unwrap_or_default(),
            subjects,
        )
    });
    copy(
        admin,
        &format!("{schema}.events"),
        "position, revision, id, event_type, schema_version, recorded_at, actor, request_id, payload, subjects",
        &[
            Type::TEXT,
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::INT4,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
        ],
        rows,
    )
    .await?;
    // An event concerns the resources it names and, for a holding, its holder and office as
    // they were when it was recorded: a correction may move a holding to another person or
    // office, from its own event on (the audit index's rule).
    let mut moves: HashMap<HoldingId, Vec<(usize, [uuid::Uuid; 2])>> = HashMap::new();
    let mut started: HashMap<HoldingId, [uuid::Uuid; 2]> = HashMap::new();
    for (revision, fact) in facts.iter().enumerate() {
        if let Event::HoldingStarted(e) = &fact.event {
            started.insert(e.holding, [e.person.uuid(), e.office.uuid()]);
        }
        if let Event::HoldingCorrected(e) = &fact.event {
            let list = moves.entry(e.holding).or_default();
            if list.is_empty() {
                list.push((0, [e.before.person.uuid(), e.before.office.uuid()]));
            }
            list.push((revision, [e.after.person.uuid(), e.after.office.uuid()]));
        }
    }
    let concerned = facts.iter().enumerate().flat_map(|(revision, fact)| {
        let mut resources: Vec<uuid::Uuid> = Vec::new();
        for subject in fact.event.subjects() {
            resources.push(subject.uuid());
            if let EntityRef::Holding(id) = subject {
                let party = match moves.get(&id) {
                    Some(list) => {
                        let at = list.partition_point(|(from, _)| *from <= revision);
                        at.checked_sub(1).map(|i| list[i].1)
                    }
                    None => started.get(&id).copied(),
                };
                resources.extend(party.into_iter().flatten());
            }
        }
        resources.sort_unstable();
        resources.dedup();
        resources.into_iter().map(move |r| (r, revision as i64))
    });
    copy(
        admin,
        &format!("{schema}.resource_events"),
        "resource, revision",
        &[Type::UUID, Type::INT8],
        concerned,
    )
    .await
}

/// Units, their parents and ancestors over time, offices and the units they belong to.
async fn copy_structure(
    admin: &Client,
    schema: &str,
    registry: &Registry,
) -> Result<(), tokio_postgres::Error> {
    let range = |span: Span| (Day(span.start), ends(span));
    let units = registry.units().map(|(id, unit)| {
        let (a, b) = range(unit.life);
        (
            id.uuid(),
            format!("{:?}", unit.kind),
            format!("{:?}", unit.level),
            a,
            b,
        )
    });
    copy_ranged(
        admin,
        &format!("{schema}.units"),
        "unit, kind, level",
        &[Type::UUID, Type::TEXT, Type::TEXT],
        units,
    )
    .await?;
    let parents = registry.units().flat_map(|(id, unit)| {
        unit.parents
            .iter()
            .filter(|link| !link.span.is_empty())
            .map(move |link| {
                let (a, b) = range(link.span);
                (id.uuid(), link.parent.uuid(), a, b)
            })
    });
    copy_ranged(
        admin,
        &format!("{schema}.unit_parents"),
        "unit, parent",
        &[Type::UUID, Type::UUID],
        parents,
    )
    .await?;
    let ancestors = ancestors(registry);
    let rows = ancestors.iter().flat_map(|(unit, list)| {
        list.iter().map(move |(ancestor, span)| {
            let (a, b) = range(*span);
            (unit.uuid(), ancestor.uuid(), a, b)
        })
    });
    copy_ranged(
        admin,
        &format!("{schema}.unit_ancestors"),
        "unit, ancestor",
        &[Type::UUID, Type::UUID],
        rows,
    )
    .await?;
    let offices = registry.offices().map(|(id, office)| {
        let (a, b) = range(office.life);
        (id.uuid(), format!("{:?}", office.kind), a, b)
    });
    copy_ranged(
        admin,
        &format!("{schema}.offices"),
        "office, kind",
        &[Type::UUID, Type::TEXT],
        offices,
    )
    .await?;
    let placements = registry.offices().flat_map(|(id, office)| {
        office
            .placements
            .iter()
            .enumerate()
            .filter_map(move |(i, (from, unit))| {
                let until: Option<Date> = office
                    .placements
                    .get(i + 1)
                    .map(|(next, _)| *next)
                    .or(office.life.end);
                if until.is_some_and(|u| u <= *from) {
                    return None;
                }
                Some((id.uuid(), unit.uuid(), Day(*from), until.map(Day)))
            })
    });
    copy_ranged(
        admin,
        &format!("{schema}.office_units"),
        "office, unit",
        &[Type::UUID, Type::UUID],
        placements,
    )
    .await
}

/// Copies rows whose last two values are their days into `table` (`columns`, then its days).
async fn copy_ranged<R: Row>(
    admin: &Client,
    table: &str,
    columns: &str,
    types: &[Type],
    rows: impl IntoIterator<Item = R>,
) -> Result<(), tokio_postgres::Error> {
    let mut all_types = types.to_vec();
    all_types.extend([Type::DATE, Type::DATE]);
    copy(
        admin,
        table,
        &format!("{columns}, starts, ends"),
        &all_types,
        rows,
    )
    .await
}

/// Every ancestor of every unit, with the days it was one: a parent for the days of the link,
/// and the parent's ancestors for the days both links held.
fn ancestors(registry: &Registry) -> HashMap<UnitId, Vec<(UnitId, Span)>> {
    fn of(
        unit: UnitId,
        registry: &Registry,
        known: &mut HashMap<UnitId, Vec<(UnitId, Span)>>,
        depth: usize,
    ) -> Vec<(UnitId, Span)> {
        if let Some(list) = known.get(&unit) {
            return list.clone();
        }
        let mut list = Vec::new();
        if let Some(u) = registry.unit(unit) {
            // The structure is a tree over time; the depth guards a cycle a bad input made.
            for link in u.parents.iter().filter(|l| !l.span.is_empty()) {
                list.push((link.parent, link.span));
                if depth < 32 {
                    for (ancestor, span) in of(link.parent, registry, known, depth + 1) {
                        if let Some(both) = span.intersection(link.span).filter(|s| !s.is_empty()) {
                            list.push((ancestor, both));
                        }
                    }
                }
            }
        }
        known.insert(unit, list.clone());
        list
    }
    let mut known = HashMap::new();
    for (id, _) in registry.units() {
        of(id, registry, &mut known, 0);
    }
    known
}

/// Q3: in a province ($1) on a day ($2), how many communes have one person holding both a
/// Vice Secretary office of the commune's Party committee and the Chair of its Front. The
/// communes come from the materialised path (one GiST scan), each commune's bodies, offices
/// and holders are joined once, and a commune counts when one person's group has both offices:
/// no recursion and no CTE read twice.
fn q3_sql(schema: &str) -> String {
    format!(
        "SELECT count(DISTINCT commune) FROM (
             SELECT bp.parent AS commune, h.person
             FROM {schema}.unit_ancestors a
             JOIN {schema}.units c ON c.unit = a.unit AND c.kind = 'AdministrativeArea'
                  AND c.level = 'Commune' AND c.during @> $2::text::date
             JOIN {schema}.unit_parents bp ON bp.parent = c.unit AND bp.during @> $2::text::date
             JOIN {schema}.units b ON b.unit = bp.unit AND b.kind IN ('PartyCommittee', 'FatherlandFront')
             JOIN {schema}.office_units ou ON ou.unit = b.unit AND ou.during @> $2::text::date
             JOIN {schema}.offices o ON o.office = ou.office AND o.kind IN ('ViceSecretary', 'Chair')
             JOIN {schema}.holdings h ON h.office = o.office AND h.during @> $2::text::date
             WHERE a.ancestor = $1::uuid AND a.during @> $2::text::date
             GROUP BY bp.parent, h.person
             HAVING bool_or(b.kind = 'PartyCommittee' AND o.kind = 'ViceSecretary')
                AND bool_or(b.kind = 'FatherlandFront' AND o.kind = 'Chair')
         ) both_offices"
    )
}
