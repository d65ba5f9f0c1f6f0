//! Fixtures for the command-line tool's tests and benchmarks: import files.

/// The id of the `n`-th record of a kind (1 unit, 2 office, 3 person, 4 holding) in
/// [`holdings_jsonl`].
pub fn bulk_id(kind: u32, n: usize) -> String {
    format!("0193b000-{kind:04}-7000-8000-{n:012}")
}

/// A JSON Lines file: one unit, `offices` sole offices and `per_office` back-to-back
/// holdings in each (one person each), 1990 onwards, half a year each.
pub fn holdings_jsonl(offices: usize, per_office: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{{\"type\":\"unit\",\"id\":\"{}\",\"name\":\"Xã Tải\",\"kind\":\"peoples-committee\",\"level\":\"commune\",\"from\":\"1980-01-01\",\"basis\":\"1/NQ\",\"basis_date\":\"1980-01-01\",\"issuer\":\"HĐND\"}}\n",
        bulk_id(1, 0)
    ));
    for o in 0..offices {
        out.push_str(&format!(
            "{{\"type\":\"office\",\"id\":\"{}\",\"unit\":\"{}\",\"title\":\"Chức vụ {o}\",\"kind\":\"member\",\"from\":\"1980-01-01\"}}\n",
            bulk_id(2, o),
            bulk_id(1, 0)
        ));
    }
    for o in 0..offices {
        for h in 0..per_office {
            let n = o * per_office + h;
            let (from, until) = (1990 * 2 + h, 1990 * 2 + h + 1);
            let half = |x: usize| {
                format!(
                    "{}-{:02}-01",
                    x / 2,
                    if x.is_multiple_of(2) { 1 } else { 7 }
                )
            };
            out.push_str(&format!(
                "{{\"type\":\"person\",\"id\":\"{}\",\"name\":\"Người Số {n}\"}}\n{{\"type\":\"holding\",\"id\":\"{}\",\"person\":\"{}\",\"office\":\"{}\",\"from\":\"{}\",\"until\":\"{}\",\"how\":\"appointed\"}}\n",
                bulk_id(3, n),
                bulk_id(4, n),
                bulk_id(3, n),
                bulk_id(2, o),
                half(from),
                half(until)
            ));
        }
    }
    out
}
