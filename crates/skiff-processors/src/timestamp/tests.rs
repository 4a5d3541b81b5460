#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::testing::*;
use chrono::{Datelike, Utc};
use serde_json::json;

/// `@timestamp` of the event after the processors, as RFC 3339 with milliseconds.
fn stamped(yaml: &str, field_value: serde_json::Value) -> serde_json::Value {
    let p = build(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    let mut ev = event("m");
    ev.insert("ts", field_value);
    json(&run(&p, ev).unwrap())
}

/// The example of Filebeat's documentation: two layouts, two test values checked at load.
#[test]
fn filebeat_doc_example() {
    let yaml = r#"
processors:
- timestamp:
    field: start_time
    layouts:
      - '2006-01-02T15:04:05Z'
      - '2006-01-02T15:04:05.999Z'
    test:
      - '2019-06-22T16:33:51Z'
      - '2019-11-18T04:59:51.123Z'
- drop_fields:
    fields: [start_time]
"#;
    let p = build(yaml).unwrap();
    for (v, want) in [
        ("2019-06-22T16:33:51Z", "2019-06-22T16:33:51.000Z"),
        ("2019-11-18T04:59:51.123Z", "2019-11-18T04:59:51.123Z"),
    ] {
        let mut ev = event("m");
        ev.insert("start_time", json!(v));
        let out = json(&run(&p, ev).unwrap());
        assert_eq!(out["@timestamp"], want);
        assert!(out.get("start_time").is_none());
    }
    // A test value that does not parse refuses the configuration, naming the value's line.
    let e = build("processors:\n- timestamp:\n    field: ts\n    layouts: ['2006-01-89T15:04:05Z07:00']\n    test:\n      - '2015-03-07T11:06:39Z'\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("test timestamp `2015-03-07T11:06:39Z` does not parse"),
        "{e}"
    );
    assert!(e.contains("t.yml:6"), "{e}");
}

/// libbeat's `TestParsePatterns`: ANSIC, RFC3339Nano, RFC3339, UNIX, UNIX_MS.
#[test]
fn layouts_and_unix() {
    let want = "2015-03-07T11:06:39.000Z";
    let yaml = "processors: [{timestamp: {field: ts, layouts: ['Mon Jan _2 15:04:05 2006', '2006-01-02T15:04:05.999999999Z07:00', '2006-01-02T15:04:05Z07:00']}}]";
    for v in [
        "Sat Mar  7 11:06:39 2015",
        "2015-03-07T11:06:39Z",
        "2015-03-07T12:06:39+01:00",
    ] {
        assert_eq!(stamped(yaml, json!(v))["@timestamp"], want, "{v}");
    }
    let unix = "processors: [{timestamp: {field: ts, layouts: UNIX}}]";
    for v in [
        json!(1425726399),
        json!(1425726399.0),
        json!("1425726399"),
        json!("1425726399.0"),
    ] {
        assert_eq!(stamped(unix, v.clone())["@timestamp"], want, "{v}");
    }
    let ms = "processors: [{timestamp: {field: ts, layouts: [UNIX_MS]}}]";
    for v in [
        json!(1425726399000i64),
        json!(1425726399000.0),
        json!("1425726399000"),
        json!("1425726399000.0"),
    ] {
        assert_eq!(stamped(ms, v.clone())["@timestamp"], want, "{v}");
    }
}

/// libbeat's `TestTimezone`, on `Sat Mar  7 11:06:39 2015` (ANSIC).
#[test]
fn timezones() {
    let cases: &[(&str, Option<&str>)] = &[
        ("America/Panama", Some("2015-03-07T16:06:39.000Z")),
        ("Etc/UTC", Some("2015-03-07T11:06:39.000Z")),
        ("Etc/GMT+2", Some("2015-03-07T13:06:39.000Z")),
        ("+0000", Some("2015-03-07T11:06:39.000Z")),
        ("+0430", Some("2015-03-07T06:36:39.000Z")),
        ("+03:00", Some("2015-03-07T08:06:39.000Z")),
        ("+00:30", Some("2015-03-07T10:36:39.000Z")),
        ("+04", Some("2015-03-07T07:06:39.000Z")),
        ("-03:30", Some("2015-03-07T14:36:39.000Z")),
        ("-00:30", Some("2015-03-07T11:36:39.000Z")),
        ("-04", Some("2015-03-07T15:06:39.000Z")),
        ("Z", None),
        ("Equatorial/Kundu", None),
        ("-400", None),
    ];
    for (tz, want) in cases {
        let yaml = format!(
            "processors: [{{timestamp: {{field: ts, timezone: '{tz}', layouts: ['Mon Jan _2 15:04:05 2006']}}}}]"
        );
        match want {
            Some(w) => assert_eq!(
                stamped(&yaml, json!("Sat Mar  7 11:06:39 2015"))["@timestamp"],
                *w,
                "{tz}"
            ),
            None => {
                let e = build(&yaml)
                    .err()
                    .unwrap_or_else(|| panic!("{tz} should be refused"))
                    .to_string();
                assert!(e.contains("timezone"), "{tz}: {e}");
            }
        }
    }
    // Daylight saving time in an IANA zone: summer and winter offsets differ.
    let yaml = "processors: [{timestamp: {field: ts, timezone: Europe/Paris, layouts: ['2006-01-02 15:04']}}]";
    assert_eq!(
        stamped(yaml, json!("2024-07-01 12:00"))["@timestamp"],
        "2024-07-01T10:00:00.000Z"
    );
    assert_eq!(
        stamped(yaml, json!("2024-01-01 12:00"))["@timestamp"],
        "2024-01-01T11:00:00.000Z"
    );
    // An offset in the value wins over the zone.
    let yaml = "processors: [{timestamp: {field: ts, timezone: Europe/Paris, layouts: ['2006-01-02 15:04 -0700']}}]";
    assert_eq!(
        stamped(yaml, json!("2024-07-01 12:00 +0000"))["@timestamp"],
        "2024-07-01T12:00:00.000Z"
    );
    // The zone's own abbreviation picks the offset; an unknown one is offset 0, as in Go.
    let yaml = "processors: [{timestamp: {field: ts, timezone: Europe/Paris, layouts: ['2006-01-02 15:04 MST']}}]";
    assert_eq!(
        stamped(yaml, json!("2024-07-01 12:00 CEST"))["@timestamp"],
        "2024-07-01T10:00:00.000Z"
    );
    assert_eq!(
        stamped(yaml, json!("2024-07-01 12:00 XYZ"))["@timestamp"],
        "2024-07-01T12:00:00.000Z"
    );
    assert_eq!(
        stamped(yaml, json!("2024-07-01 12:00 UTC"))["@timestamp"],
        "2024-07-01T12:00:00.000Z"
    );
}

/// libbeat's `TestParseNoYear`: the current year in the zone.
#[test]
fn no_year_takes_the_current_year() {
    let yaml =
        "processors: [{timestamp: {field: ts, timezone: EST, layouts: ['Jan _2 15:04:05.000']}}]";
    let out = stamped(yaml, json!("Mar  7 11:06:39.002"));
    let year = (Utc::now() - chrono::Duration::hours(5)).year();
    assert_eq!(out["@timestamp"], format!("{year}-03-07T16:06:39.002Z"));
}

#[test]
fn target_missing_and_failure() {
    let yaml = "processors: [{timestamp: {field: ts, target_field: event.start, layouts: ['2006-01-02']}}]";
    let out = stamped(yaml, json!("2024-02-29"));
    assert_eq!(out["event"]["start"], "2024-02-29T00:00:00.000Z");
    // Missing: an error unless ignore_missing or ignore_failure.
    let p = build("processors: [{timestamp: {field: nope, layouts: ['2006']}}]").unwrap();
    assert_eq!(
        json(&run(&p, event("m")).unwrap())["error"]["message"],
        "timestamp: no field `nope`"
    );
    for opt in ["ignore_missing", "ignore_failure"] {
        let p = build(&format!(
            "processors: [{{timestamp: {{field: nope, layouts: ['2006'], {opt}: true}}}}]"
        ))
        .unwrap();
        assert!(
            json(&run(&p, event("m")).unwrap()).get("error").is_none(),
            "{opt}"
        );
    }
    // Not parseable: error with every layout's reason, unless ignore_failure; the time stays.
    let yaml = "processors: [{timestamp: {field: ts, id: t1, layouts: ['2006-01-02', UNIX]}}]";
    let p = build(yaml).unwrap();
    let mut ev = event("m");
    let before = ev.timestamp;
    ev.insert("ts", json!("3:04PM"));
    let out = run(&p, ev).unwrap();
    assert_eq!(out.timestamp, before);
    let msg = json(&out)["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("timestamp t1: failed parsing time field `ts` = `3:04PM`"),
        "{msg}"
    );
    assert!(msg.contains("`UNIX`: not a number of seconds"), "{msg}");
    let yaml =
        "processors: [{timestamp: {field: ts, layouts: ['2006-01-02'], ignore_failure: true}}]";
    assert!(stamped(yaml, json!("x")).get("error").is_none());
    // A time skiff's timestamps cannot hold is an error, not a wrong time.
    let yaml = "processors: [{timestamp: {field: ts, layouts: ['2006-01-02']}}]";
    let v = stamped(yaml, json!("2400-01-01"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outside 1677-2262"),
        "{v}"
    );
    // The event's own @timestamp can be re-read (a no-op), and a missing layout list is refused.
    assert!(build("processors: [{timestamp: {field: ts, layouts: []}}]").is_err());
    assert!(build("processors: [{timestamp: {field: ts}}]").is_err());
}

mod fuzz {
    use super::super::golayout::Layout;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any layout and value: an error or a result, never a panic.
        #[test]
        fn never_panics(layout in "(2006|01|02|_2|__2|002|15|03|04|05|06|Jan|January|Mon|Monday|MST|PM|pm|Z07:00|-0700|-07|\\.000|\\.999|,999|[ :T/-]|\\PC){0,10}",
                        value in "[0-9A-Za-z :.,+TZ/-]{0,30}|\\PC{0,20}") {
            let _ = Layout::compile(&layout).parse(&value);
        }
    }
}
