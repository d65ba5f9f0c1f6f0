//! Calendar dates, dates known only to a month or a year, and validity spans.
//!
//! One date type is used everywhere: [`Date`], a proleptic Gregorian calendar day with no time
//! zone. Valid time in the registry is a matter of days: a decision takes effect on a day.
//!
//! # The interval convention
//!
//! Every validity interval is **half-open**: `[start, end)`. `start` is the first day on which the
//! fact holds; `end` is the first day on which it no longer holds (the effective date of the
//! decision that ends it). A successor appointed with effect from 2020-10-15 and a predecessor
//! whose holding ends on 2020-10-15 are back to back, with no gap and no overlap.
//!
//! # Precision
//!
//! Sources often give only "March 2024" or "2019". A [`PartialDate`] keeps the precision. The
//! rules reject only what cannot be true, so they use the *narrowest* interval a fact could
//! cover: a start known to the month is taken at the last day of that month, an end known to the
//! month at its first day (see [`Span::narrowest`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a text is not a date.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DateError {
    /// The text has neither the ISO form `yyyy-mm-dd` nor the Vietnamese form `dd/mm/yyyy`.
    #[error("{} is not a date: expected yyyy-mm-dd or dd/mm/yyyy", crate::quote(.0))]
    Format(String),
    /// The text has the right form but names no day of the calendar (2024-02-30).
    #[error("{} is not a date: {}", crate::quote(.0), .1)]
    Range(String, String),
}

/// A calendar day.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date(time::Date);

impl Date {
    /// The day from year, month (1-12) and day of month, if it exists.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Result<Self, DateError> {
        let month_value = time::Month::try_from(month).map_err(|e| {
            DateError::Range(format!("{year:04}-{month:02}-{day:02}"), e.to_string())
        })?;
        time::Date::from_calendar_date(year, month_value, day)
            .map(Self)
            .map_err(|e| DateError::Range(format!("{year:04}-{month:02}-{day:02}"), e.to_string()))
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.0.year()
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.0.month() as u8
    }

    /// The day of the month, 1 to 31.
    pub fn day(self) -> u8 {
        self.0.day()
    }

    /// The next day. Saturates at the last representable day.
    pub fn next_day(self) -> Self {
        Self(self.0.next_day().unwrap_or(self.0))
    }

    /// The previous day. Saturates at the first representable day.
    pub fn previous_day(self) -> Self {
        Self(self.0.previous_day().unwrap_or(self.0))
    }

    /// The day `days` days later (or earlier when negative), saturating.
    pub fn add_days(self, days: i64) -> Self {
        Self(
            self.0
                .checked_add(time::Duration::days(days))
                .unwrap_or(if days < 0 {
                    time::Date::MIN
                } else {
                    time::Date::MAX
                }),
        )
    }

    /// Days from `self` to `other` (negative when `other` is earlier).
    pub fn days_until(self, other: Date) -> i64 {
        i64::from(other.0.to_julian_day()) - i64::from(self.0.to_julian_day())
    }

    /// A compact day number (Julian day), for indexes that want an integer.
    pub fn julian_day(self) -> i32 {
        self.0.to_julian_day()
    }

    /// The day with this Julian day number, if representable.
    pub fn from_julian_day(day: i32) -> Option<Self> {
        time::Date::from_julian_day(day).ok().map(Self)
    }

    /// The last day of this day's month.
    pub fn last_of_month(self) -> Self {
        let days = self.0.month().length(self.0.year());
        Self(self.0.replace_day(days).unwrap_or(self.0))
    }
}

impl Date {
    /// `yyyy-mm-dd` as ASCII bytes, for years 0 to 9999 (every response carries dates: this
    /// skips the formatting machinery, which showed in query profiles).
    fn iso_bytes(self) -> Option<[u8; 10]> {
        let (year, month, day) = self.0.to_calendar_date();
        let year = u16::try_from(year).ok().filter(|y| *y <= 9999)?;
        let digit = |n: u16| b'0' + (n % 10) as u8;
        let (month, day) = (month as u16, u16::from(day));
        Some([
            digit(year / 1000),
            digit(year / 100),
            digit(year / 10),
            digit(year),
            b'-',
            digit(month / 10),
            digit(month),
            b'-',
            digit(day / 10),
            digit(day),
        ])
    }

    /// The first `len` characters of `yyyy-mm-dd` (4: the year, 7: year and month).
    fn write_iso(self, f: &mut fmt::Formatter<'_>, len: usize) -> fmt::Result {
        match self.iso_bytes() {
            Some(bytes) => f.write_str(std::str::from_utf8(&bytes[..len]).map_err(|_| fmt::Error)?),
            None => {
                let text = format!("{:04}-{:02}-{:02}", self.year(), self.month(), self.day());
                // Years past 9999 or before 0 have more characters before the month.
                let cut = text.len() - (10 - len);
                f.write_str(&text[..cut])
            }
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_iso(f, 10)
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn parse_number<T: FromStr>(
    part: &str,
    whole: &str,
    digits: std::ops::RangeInclusive<usize>,
) -> Result<T, DateError> {
    if !digits.contains(&part.len()) || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Format(whole.to_owned()));
    }
    part.parse()
        .map_err(|_| DateError::Format(whole.to_owned()))
}

/// The numbers of `yyyy-mm-dd` written with all its digits, as every stored date is: read
/// byte by byte, the common case of a rebuild's millions of dates.
fn iso_digits(text: &str) -> Option<(i32, u8, u8)> {
    let b: &[u8; 10] = text.as_bytes().try_into().ok()?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let mut value = [0u16; 3];
    for (n, range) in value.iter_mut().zip([0..4, 5..7, 8..10]) {
        for &digit in &b[range] {
            if !digit.is_ascii_digit() {
                return None;
            }
            *n = *n * 10 + u16::from(digit - b'0');
        }
    }
    let [year, month, day] = value;
    Some((
        i32::from(year),
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
    ))
}

/// `text` cut in three at `separator`, when it has exactly two (no allocation: a rebuild parses
/// millions of dates).
fn three_parts(text: &str, separator: char) -> Option<(&str, &str, &str)> {
    let (first, rest) = text.split_once(separator)?;
    let (second, third) = rest.split_once(separator)?;
    (!third.contains(separator)).then_some((first, second, third))
}

impl FromStr for Date {
    type Err = DateError;

    /// Parses `yyyy-mm-dd` (ISO 8601) or `dd/mm/yyyy` (as Vietnamese users type dates).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (year, month, day) = match iso_digits(text) {
            Some(numbers) => numbers,
            None => {
                let (y, m, d) = three_parts(text, '-')
                    .or_else(|| three_parts(text, '/').map(|(d, m, y)| (y, m, d)))
                    .ok_or_else(|| DateError::Format(s.to_owned()))?;
                (
                    parse_number(y, s, 4..=4)?,
                    parse_number(m, s, 1..=2)?,
                    parse_number(d, s, 1..=2)?,
                )
            }
        };
        Date::from_ymd(year, month, day).map_err(|e| match e {
            DateError::Range(_, why) => DateError::Range(s.to_owned(), why),
            other => other,
        })
    }
}

/// In human-readable formats (the JSON of events) a date is its ISO text; in binary formats
/// (snapshots of read models, millions of dates) it is its Julian day number.
impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i32(self.julian_day())
        }
    }
}

/// Parses a date written as text straight from the input, without copying it (serde's own
/// `Cow<str>` always copies: two allocations an event when a rebuild decodes millions).
struct Parsed<T>(std::marker::PhantomData<T>);

impl<T> serde::de::Visitor<'_> for Parsed<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a date as text")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Parsed(std::marker::PhantomData))
        } else {
            let day = i32::deserialize(deserializer)?;
            Date::from_julian_day(day)
                .ok_or_else(|| serde::de::Error::custom(format!("day number {day} out of range")))
        }
    }
}

/// How precisely a [`PartialDate`] is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// The exact day is known.
    Day,
    /// Only the month is known ("March 2024").
    Month,
    /// Only the year is known.
    Year,
}

/// A date known to a day, a month or a year.
///
/// Written as `2024-03-18`, `2024-03` or `2024`. The stored day is the first day of the period.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartialDate {
    first: Date,
    precision: Precision,
}

impl PartialDate {
    /// A date known to the day.
    pub const fn day(date: Date) -> Self {
        Self {
            first: date,
            precision: Precision::Day,
        }
    }

    /// A date known to the month.
    pub fn month(year: i32, month: u8) -> Result<Self, DateError> {
        Ok(Self {
            first: Date::from_ymd(year, month, 1)?,
            precision: Precision::Month,
        })
    }

    /// A date known to the year.
    pub fn year(year: i32) -> Result<Self, DateError> {
        Ok(Self {
            first: Date::from_ymd(year, 1, 1)?,
            precision: Precision::Year,
        })
    }

    /// The date as one number, for compact binary forms: the Julian day of its first day times
    /// four, plus 0, 1 or 2 for a day, a month or a year.
    pub fn code(self) -> i32 {
        let precision = match self.precision {
            Precision::Day => 0,
            Precision::Month => 1,
            Precision::Year => 2,
        };
        self.first.julian_day() * 4 + precision
    }

    /// The date a [`PartialDate::code`] stands for; `None` for a number no date has.
    pub fn from_code(code: i32) -> Option<Self> {
        let first = Date::from_julian_day(code.div_euclid(4))?;
        let date = match code.rem_euclid(4) {
            0 => PartialDate::day(first),
            1 => PartialDate::month(first.year(), first.month()).ok()?,
            2 => PartialDate::year(first.year()).ok()?,
            _ => return None,
        };
        (date.first == first).then_some(date)
    }

    /// How precisely the date is known.
    pub fn precision(self) -> Precision {
        self.precision
    }

    /// The first day the date could be.
    pub fn earliest(self) -> Date {
        self.first
    }

    /// The last day the date could be.
    pub fn latest(self) -> Date {
        match self.precision {
            Precision::Day => self.first,
            Precision::Month => self.first.last_of_month(),
            Precision::Year => Date::from_ymd(self.first.year(), 12, 31).unwrap_or(self.first),
        }
    }

    /// Whether `day` is one of the days this date could be.
    pub fn could_be(self, day: Date) -> bool {
        self.earliest() <= day && day <= self.latest()
    }
}

impl From<Date> for PartialDate {
    fn from(date: Date) -> Self {
        Self::day(date)
    }
}

impl fmt::Display for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.precision {
            Precision::Day => self.first.write_iso(f, 10),
            Precision::Month => self.first.write_iso(f, 7),
            Precision::Year => self.first.write_iso(f, 4),
        }
    }
}

impl fmt::Debug for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PartialDate {
    type Err = DateError;

    /// Parses `yyyy-mm-dd`, `dd/mm/yyyy`, `yyyy-mm`, `mm/yyyy` or `yyyy`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (dashes, slashes) = if iso_digits(text).is_some() {
            (2, 0)
        } else {
            (text.matches('-').count(), text.matches('/').count())
        };
        match (dashes, slashes) {
            (2, 0) | (0, 2) => text.parse().map(Self::day).map_err(|e| match e {
                DateError::Range(_, why) => DateError::Range(s.to_owned(), why),
                DateError::Format(_) => DateError::Format(s.to_owned()),
            }),
            (1, 0) | (0, 1) => {
                let (year, month) = if dashes == 1 {
                    text.split_once('-').unwrap_or_default()
                } else {
                    let (m, y) = text.split_once('/').unwrap_or_default();
                    (y, m)
                };
                let year = parse_number(year, s, 4..=4)?;
                let month = parse_number(month, s, 1..=2)?;
                Self::month(year, month).map_err(|e| match e {
                    DateError::Range(_, why) => DateError::Range(s.to_owned(), why),
                    other => other,
                })
            }
            (0, 0) => Self::year(parse_number(text, s, 4..=4)?),
            _ => Err(DateError::Format(s.to_owned())),
        }
    }
}

/// Text in human-readable formats; in binary formats one number: the Julian day of the first
/// day times four, plus 0, 1 or 2 for a day, a month or a year.
impl Serialize for PartialDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i32(self.code())
        }
    }
}

impl<'de> Deserialize<'de> for PartialDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            return deserializer.deserialize_str(Parsed(std::marker::PhantomData));
        }
        let code = i32::deserialize(deserializer)?;
        PartialDate::from_code(code)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid partial date code {code}")))
    }
}

/// A half-open span of days `[start, end)`; `end: None` means it has not ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// The first day in the span.
    pub start: Date,
    /// The first day after the span, or `None` while it goes on.
    pub end: Option<Date>,
}

impl Span {
    /// A span from `start` that has not ended.
    pub const fn from(start: Date) -> Self {
        Self { start, end: None }
    }

    /// A span `[start, end)`.
    pub const fn between(start: Date, end: Date) -> Self {
        Self {
            start,
            end: Some(end),
        }
    }

    /// The narrowest span a fact with these imprecise bounds could cover: from the latest
    /// possible start to the earliest possible end. May be empty.
    pub fn narrowest(start: PartialDate, end: Option<PartialDate>) -> Self {
        Self {
            start: start.latest(),
            end: end.map(PartialDate::earliest),
        }
    }

    /// Whether the span holds no day at all.
    pub fn is_empty(self) -> bool {
        self.end.is_some_and(|end| end <= self.start)
    }

    /// Whether `day` lies in the span.
    pub fn contains(self, day: Date) -> bool {
        self.start <= day && self.end.is_none_or(|end| day < end)
    }

    /// Whether the two spans share at least one day.
    pub fn overlaps(self, other: Span) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self.end.is_none_or(|end| other.start < end)
            && other.end.is_none_or(|end| self.start < end)
    }

    /// Whether every day of `self` lies in `outer`. An empty span lies in anything.
    pub fn within(self, outer: Span) -> bool {
        if self.is_empty() {
            return true;
        }
        let ends_in_time = match (self.end, outer.end) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(inner), Some(outer)) => inner <= outer,
        };
        outer.start <= self.start && ends_in_time
    }

    /// The days shared by both spans, if any.
    pub fn intersection(self, other: Span) -> Option<Span> {
        if !self.overlaps(other) {
            return None;
        }
        let end = match (self.end, other.end) {
            (None, end) | (end, None) => end,
            (Some(a), Some(b)) => Some(a.min(b)),
        };
        Some(Span {
            start: self.start.max(other.start),
            end,
        })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(end) => write!(f, "[{}, {})", self.start, end),
            None => write!(f, "[{}, ...)", self.start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_as_iso_across_the_whole_range() {
        let (first, last) = (
            time::Date::MIN.to_julian_day(),
            time::Date::MAX.to_julian_day(),
        );
        let days = (first..=last)
            .step_by(997)
            .chain([first, last, d("1999-12-31").julian_day()]);
        for day in days {
            let date = Date::from_julian_day(day).expect("in range");
            let (y, m, dd) = (date.year(), date.month(), date.day());
            assert_eq!(date.to_string(), format!("{y:04}-{m:02}-{dd:02}"));
            assert_eq!(
                PartialDate::month(y, m).expect("month").to_string(),
                format!("{y:04}-{m:02}")
            );
            assert_eq!(
                PartialDate::year(y).expect("year").to_string(),
                format!("{y:04}")
            );
            if y < 0 {
                continue; // Years before 1 BC print with a sign; the parsers take four digits.
            }
            // Read back digit by digit (the ISO fast path) and through the general parser.
            assert_eq!(d(&date.to_string()), date);
            assert_eq!(d(&format!("{dd}/{m}/{y:04}")), date);
            assert_eq!(
                date.to_string().parse::<PartialDate>().ok(),
                Some(PartialDate::day(date))
            );
        }
    }

    fn d(s: &str) -> Date {
        s.parse().expect("test date")
    }

    #[test]
    fn parses_iso_and_vietnamese_forms() {
        assert_eq!(d("2024-03-18"), Date::from_ymd(2024, 3, 18).expect("valid"));
        assert_eq!(d("18/3/2024"), d("2024-03-18"));
        assert_eq!(d("05/07/2025").to_string(), "2025-07-05");
    }

    #[test]
    fn rejects_impossible_and_malformed_dates() {
        assert!(matches!(
            "2024-02-30".parse::<Date>(),
            Err(DateError::Range(..))
        ));
        assert!(matches!(
            "2023-02-29".parse::<Date>(),
            Err(DateError::Range(..))
        ));
        assert!(matches!(
            "2024-13-01".parse::<Date>(),
            Err(DateError::Range(..))
        ));
        assert!(matches!(
            "18-03-2024".parse::<Date>(),
            Err(DateError::Format(_))
        ));
        for malformed in ["2024-0a-18", "2024-03-1８", "2024-03_18", "+024-03-18"] {
            assert!(
                matches!(malformed.parse::<Date>(), Err(DateError::Format(_))),
                "{malformed}"
            );
        }
        assert!(matches!(
            "2024-00-18".parse::<Date>(),
            Err(DateError::Range(..))
        ));
        assert_eq!(d(" 2024-03-18 "), d("2024-03-18"));
        assert!(matches!(
            "yesterday".parse::<Date>(),
            Err(DateError::Format(_))
        ));
        assert!(matches!(
            "2024-3-18x".parse::<Date>(),
            Err(DateError::Format(_))
        ));
        assert_eq!(
            "2024-02-30"
                .parse::<Date>()
                .map_err(|e| e.to_string())
                .err()
                .as_deref()
                .map(|m| m.starts_with("\"2024-02-30\" is not a date")),
            Some(true)
        );
    }

    #[test]
    fn partial_dates_keep_their_precision() {
        let march: PartialDate = "2024-03".parse().expect("month");
        assert_eq!(march.precision(), Precision::Month);
        assert_eq!(march.earliest(), d("2024-03-01"));
        assert_eq!(march.latest(), d("2024-03-31"));
        assert_eq!("03/2024".parse::<PartialDate>(), Ok(march));
        let year: PartialDate = "2019".parse().expect("year");
        assert_eq!(year.latest(), d("2019-12-31"));
        let feb: PartialDate = "2024-02".parse().expect("month");
        assert_eq!(feb.latest(), d("2024-02-29"));
        assert_eq!(
            serde_json::to_string(&march).ok().as_deref(),
            Some("\"2024-03\"")
        );
        assert!("2024-00".parse::<PartialDate>().is_err());
    }

    #[test]
    fn spans_are_half_open() {
        let a = Span::between(d("2020-01-01"), d("2020-10-15"));
        let b = Span::from(d("2020-10-15"));
        assert!(!a.overlaps(b), "back to back spans do not overlap");
        assert!(a.contains(d("2020-10-14")));
        assert!(!a.contains(d("2020-10-15")));
        assert!(b.contains(d("2020-10-15")));
        assert!(Span::between(d("2020-01-01"), d("2020-01-01")).is_empty());
        assert!(a.within(Span::from(d("2019-01-01"))));
        assert!(!b.within(Span::between(d("2019-01-01"), d("2030-01-01"))));
    }
}
