//! Dates as callers type them (`yyyy-mm-dd`, `dd/mm/yyyy`, months, years): parsing never
//! panics, and what parses prints back to a text that parses to the same date.

#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_domain::{Date, PartialDate};

fuzz_target!(|text: &str| {
    if let Ok(date) = text.parse::<Date>() {
        assert_eq!(date.to_string().parse::<Date>(), Ok(date), "{text:?}");
        let _ = date.add_days(i64::from(date.day()) * 400);
    }
    if let Ok(partial) = text.parse::<PartialDate>() {
        assert_eq!(
            partial.to_string().parse::<PartialDate>(),
            Ok(partial),
            "{text:?}"
        );
        assert!(partial.earliest() <= partial.latest(), "{text:?}");
    }
});
