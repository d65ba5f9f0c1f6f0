//! Fixed-width little-endian records for the largest tables of a snapshot: holding versions,
//! the offices' lists of them, persons and legal bases here; the writer's persons and holdings
//! in the service core.
//!
//! A national registry has millions of rows in each; decoding them field by field through a
//! self-describing format (MessagePack) took most of a snapshot's load time. Here every row is
//! a few plain numbers written one after another, read back with a bounds check per field and
//! a validity check per value that can be invalid (dates, enum tags), so a damaged body is an
//! error, never a wrong row. The smaller tables stay MessagePack (see `snapshot`).

use std::io::Read;

use registry_domain::{Date, EndReason, HoldingEnd, PartialDate};
use smallvec::SmallVec;
use uuid::Uuid;

use crate::{BasisRow, HoldingVersion, PersonRow, Recorded, Slot, Version};

/// Why a record could not be read.
#[derive(Debug)]
pub struct Damaged(pub &'static str);

/// Writes records.
#[derive(Default)]
pub struct Out(pub Vec<u8>);

impl Out {
    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// A `u32`.
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// An `i32`.
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// An `i64`.
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A `u64`.
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A UUID's 16 bytes.
    pub fn uuid(&mut self, v: Uuid) {
        self.0.extend_from_slice(v.as_bytes());
    }
    /// A count of rows ([`In::len`]).
    pub fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u64).to_le_bytes());
    }
    /// A count of items ([`In::count`]).
    pub fn count(&mut self, n: usize) {
        self.u32(n as u32);
    }
    /// A day.
    pub fn date(&mut self, day: Date) {
        self.i32(day.julian_day());
    }
    /// A day or none ([`In::optional_date`]).
    pub fn optional_date(&mut self, day: Option<Date>) {
        self.i32(day.map_or(NO_DATE, Date::julian_day));
    }
    /// A partial date.
    pub fn partial_date(&mut self, date: PartialDate) {
        self.i32(date.code());
    }
    /// A text: its length in bytes, then its UTF-8.
    pub fn str(&mut self, text: &str) {
        self.count(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }
}

/// Reads records from a section of `length` bytes: a slice, or a snapshot file read as it is
/// decoded ([`crate::snapshot::Sections::records`]).
pub struct In<R> {
    source: R,
    left: u64,
}

impl<'a> In<&'a [u8]> {
    /// Records in `bytes`.
    pub fn of(bytes: &'a [u8]) -> Self {
        Self::new(bytes, bytes.len() as u64)
    }
}

impl<R: Read> In<R> {
    /// Records in the next `length` bytes of `source`.
    pub fn new(source: R, length: u64) -> Self {
        Self {
            source,
            left: length,
        }
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Damaged> {
        let mut bytes = [0u8; N];
        self.fill(&mut bytes)?;
        Ok(bytes)
    }
    fn fill(&mut self, bytes: &mut [u8]) -> Result<(), Damaged> {
        if (bytes.len() as u64) > self.left {
            return Err(Damaged("record past the end of its section"));
        }
        self.source
            .read_exact(bytes)
            .map_err(|_| Damaged("the section could not be read to its end"))?;
        self.left -= bytes.len() as u64;
        Ok(())
    }
    /// A byte.
    pub fn u8(&mut self) -> Result<u8, Damaged> {
        Ok(self.take::<1>()?[0])
    }
    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, Damaged> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    /// An `i32`.
    pub fn i32(&mut self) -> Result<i32, Damaged> {
        Ok(i32::from_le_bytes(self.take()?))
    }
    /// An `i64`.
    pub fn i64(&mut self) -> Result<i64, Damaged> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, Damaged> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    /// A UUID.
    pub fn uuid(&mut self) -> Result<Uuid, Damaged> {
        Ok(Uuid::from_bytes(self.take()?))
    }
    /// Sixteen bytes.
    pub fn bytes16(&mut self) -> Result<[u8; 16], Damaged> {
        self.take()
    }
    /// A count of rows, each at least `min_size` bytes: a count the rest of the section cannot
    /// hold is refused before anything is allocated for it.
    pub fn len(&mut self, min_size: usize) -> Result<usize, Damaged> {
        let n = u64::from_le_bytes(self.take()?);
        if n.saturating_mul(min_size as u64) > self.left {
            return Err(Damaged("row count larger than its section"));
        }
        Ok(n as usize)
    }
    /// A count (u32) of items, each at least `min_size` bytes, checked like [`In::len`].
    pub fn count(&mut self, min_size: usize) -> Result<usize, Damaged> {
        let n = u32::from_le_bytes(self.take()?);
        if u64::from(n).saturating_mul(min_size as u64) > self.left {
            return Err(Damaged("item count larger than its section"));
        }
        Ok(n as usize)
    }
    /// A day.
    pub fn date(&mut self) -> Result<Date, Damaged> {
        Date::from_julian_day(self.i32()?).ok_or(Damaged("day number out of range"))
    }
    /// A partial date.
    pub fn partial_date(&mut self) -> Result<PartialDate, Damaged> {
        PartialDate::from_code(self.i32()?).ok_or(Damaged("invalid partial date"))
    }
    /// A day or none.
    pub fn optional_date(&mut self) -> Result<Option<Date>, Damaged> {
        match self.i32()? {
            NO_DATE => Ok(None),
            day => Date::from_julian_day(day)
                .map(Some)
                .ok_or(Damaged("day number out of range")),
        }
    }
    /// A text ([`Out::str`]).
    pub fn string(&mut self) -> Result<String, Damaged> {
        let n = self.count(1)?;
        let mut text = vec![0; n];
        self.fill(&mut text)?;
        String::from_utf8(text).map_err(|_| Damaged("text that is not UTF-8"))
    }
    /// Whether the section was read to its end.
    pub fn finished(&self) -> bool {
        self.left == 0
    }
    /// What the records were read from.
    pub fn into_source(self) -> R {
        self.source
    }
}

/// One row type's record.
pub(crate) trait Record: Sized {
    /// The smallest record, for checking counts.
    const MIN_SIZE: usize;
    fn put(&self, out: &mut Out);
    fn get(input: &mut In<impl Read>) -> Result<Self, Damaged>;
}

/// A list of records: its length, then the records.
pub(crate) fn put_all<T: Record>(rows: &[T], out: &mut Out) {
    out.len(rows.len());
    for row in rows {
        row.put(out);
    }
}

pub(crate) fn get_all<T: Record>(input: &mut In<impl Read>) -> Result<Vec<T>, Damaged> {
    let n = input.len(T::MIN_SIZE)?;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        rows.push(T::get(input)?);
    }
    Ok(rows)
}

const NO_DATE: i32 = i32::MIN;

/// The code of a holding's end reason, 0 for none.
pub fn end_reason_code(reason: Option<EndReason>) -> u8 {
    match reason {
        None => 0,
        Some(EndReason::TermEnd) => 1,
        Some(EndReason::Dismissal) => 2,
        Some(EndReason::Resignation) => 3,
        Some(EndReason::Transfer) => 4,
        Some(EndReason::Retirement) => 5,
        Some(EndReason::Death) => 6,
        Some(EndReason::OfficeAbolished) => 7,
        Some(EndReason::UnitMerged) => 8,
        Some(EndReason::UnitSplit) => 9,
        Some(EndReason::UnitDissolved) => 10,
    }
}

/// The end reason of a code ([`end_reason_code`]).
pub fn end_reason(code: u8) -> Result<Option<EndReason>, Damaged> {
    Ok(Some(match code {
        0 => return Ok(None),
        1 => EndReason::TermEnd,
        2 => EndReason::Dismissal,
        3 => EndReason::Resignation,
        4 => EndReason::Transfer,
        5 => EndReason::Retirement,
        6 => EndReason::Death,
        7 => EndReason::OfficeAbolished,
        8 => EndReason::UnitMerged,
        9 => EndReason::UnitSplit,
        10 => EndReason::UnitDissolved,
        _ => return Err(Damaged("invalid end reason")),
    }))
}

impl Record for Recorded {
    const MIN_SIZE: usize = 16;
    fn put(&self, out: &mut Out) {
        out.i64(self.from);
        out.i64(self.to);
    }
    fn get(input: &mut In<impl Read>) -> Result<Self, Damaged> {
        Ok(Self {
            from: input.i64()?,
            to: input.i64()?,
        })
    }
}

impl Record for Slot {
    const MIN_SIZE: usize = 12;
    fn put(&self, out: &mut Out) {
        out.i32(self.from);
        out.i32(self.to);
        out.u32(self.version);
    }
    fn get(input: &mut In<impl Read>) -> Result<Self, Damaged> {
        Ok(Self {
            from: input.i32()?,
            to: input.i32()?,
            version: input.u32()?,
        })
    }
}

impl Record for Vec<Slot> {
    const MIN_SIZE: usize = 8;
    fn put(&self, out: &mut Out) {
        put_all(self, out);
    }
    fn get(input: &mut In<impl Read>) -> Result<Self, Damaged> {
        get_all(input)
    }
}

impl Record for HoldingVersion {
    const MIN_SIZE: usize = 78;
    fn put(&self, out: &mut Out) {
        out.uuid(self.holding.uuid());
        out.u32(self.person);
        out.u32(self.office);
        out.i32(self.start.code());
        match self.end {
            HoldingEnd::Open => (out.u8(0), out.i32(0)),
            HoldingEnd::Unknown => (out.u8(1), out.i32(0)),
            HoldingEnd::On(day) => (out.u8(2), out.i32(day.code())),
        };
        out.i32(self.days.0);
        out.i32(self.days.1);
        out.u8(end_reason_code(self.end_reason));
        out.u32(self.beginning);
        out.u32(self.basis);
        out.u32(self.end_basis);
        self.recorded.put(out);
        out.u32(self.previous);
        out.u32(self.event);
    }
    fn get(input: &mut In<impl Read>) -> Result<Self, Damaged> {
        Ok(Self {
            holding: input.uuid()?.into(),
            person: input.u32()?,
            office: input.u32()?,
            start: input.partial_date()?,
            end: {
                let tag = input.u8()?;
                let day = input.i32()?;
                match tag {
                    0 => HoldingEnd::Open,
                    1 => HoldingEnd::Unknown,
                    2 => HoldingEnd::On(
                        PartialDate::from_code(day).ok_or(Damaged("invalid partial date"))?,
                    ),
                    _ => return Err(Damaged("invalid holding end")),
                }
            },
            days: (input.i32()?, input.i32()?),
            end_reason: end_reason(input.u8()?)?,
            beginning: input.u32()?,
            basis: input.u32()?,
            end_basis: input.u32()?,
            recorded: Recorded::get(input)?,
            previous: input.u32()?,
            event: input.u32()?,
        })
    }
}

impl Record for BasisRow {
    const MIN_SIZE: usize = 20;
    fn put(&self, out: &mut Out) {
        out.u32(self.number.0);
        out.u32(self.number.1);
        out.u32(self.issuer);
        out.i32(self.issued_on.julian_day());
        out.i32(self.effective_on.map_or(NO_DATE, Date::julian_day));
    }
    fn get(input: &mut In<impl Read>) -> Result<Self, Damaged> {
        Ok(Self {
            number: (input.u32()?, input.u32()?),
            issuer: input.u32()?,
            issued_on: input.date()?,
            effective_on: input.optional_date()?,
        })
    }
}

impl Record for PersonRow {
    const MIN_SIZE: usize = 13;
    fn put(&self, out: &mut Out) {
        out.u32(self.registered);
        match self.id {
            Some(id) => {
                out.u8(1);
                out.uuid(id.uuid());
            }
            None => out.u8(0),
        }
        out.u32(self.names.len() as u32);
        for name in &self.names {
            out.i32(name.value.0.map_or(NO_DATE, Date::julian_day));
            out.u32(name.value.1);
            out.i32(name.value.2);
            name.recorded.put(out);
        }
        out.u32(self.holdings.len() as u32);
        for slot in &self.holdings {
            slot.put(out);
        }
    }
    fn get(input: &mut In<impl Read>) -> Result<Self, Damaged> {
        let registered = input.u32()?;
        let id = match input.u8()? {
            0 => None,
            1 => Some(input.uuid()?.into()),
            _ => return Err(Damaged("invalid person id flag")),
        };
        let n = input.u32()?;
        let mut names = SmallVec::new();
        for _ in 0..n {
            let since = input.optional_date()?;
            let name = input.u32()?;
            let birth = input.i32()?;
            if birth != crate::NO_BIRTH && PartialDate::from_code(birth).is_none() {
                return Err(Damaged("invalid birth date"));
            }
            names.push(Version {
                value: (since, name, birth),
                recorded: Recorded::get(input)?,
            });
        }
        let n = input.u32()?;
        let mut holdings = SmallVec::new();
        for _ in 0..n {
            holdings.push(Slot::get(input)?);
        }
        Ok(Self {
            id,
            names,
            holdings,
            registered,
        })
    }
}
