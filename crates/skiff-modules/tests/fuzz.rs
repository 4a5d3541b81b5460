//! Property tests: every fileset's pipeline takes any line (log lines are untrusted input)
//! without panicking, and always leaves either parsed fields or `error.message` with the
//! original text kept; the `user_agent` step takes any string.

use proptest::prelude::*;
use serde_json::{Map, Value};
use skiff_modules::{MODULES, doc, processor::FilesetProcessor};

fn processors() -> &'static [FilesetProcessor] {
    static ALL: std::sync::OnceLock<Vec<FilesetProcessor>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        MODULES
            .iter()
            .flat_map(|m| m.filesets.iter().map(move |(f, _)| (m.name, *f)))
            .map(|(m, f)| {
                FilesetProcessor::new(m, f, Some("+01:00".into())).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_line_is_parsed_or_marked(line in "(\\PC|[\\[\\]\":\\- 0-9])*", prefix in prop::sample::select(vec![
        "", "127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] \"GET ", "2016/10/25 14:49:34 [error] 1#0: ",
        "Dec 13 11:35:28 host proc[1]: ", "[Mon Dec 26 16:22:08 2016] [error] ", "1:M 30 May 12:50:13.457 * ",
        "2019-03-24T13:44:25.484123Z 0 [System] ", "2020-04-16 11:45:11.844 CEST [1] LOG:  ",
        "type=SYSCALL msg=audit(1485893834.891:18877199): arch=c000003e syscall=44 exe=",
        "type=USER_LOGIN msg=audit(1492896301.004:3163): pid=9391 uid=0 msg='op=login acct=",
        "type=EXECVE msg=audit(1581371984.206:579393): argc=2 a0=top a1",
        // The access filesets' user_agent step gets the rest of the line (up to a `"`).
        "127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 612 \"-\" \"",
    ])) {
        for p in processors() {
            let mut d = Map::new();
            let text = format!("{prefix}{line}");
            doc::insert(&mut d, "message", Value::String(text.clone()));
            p.run_doc(&mut d);
            if doc::get(&d, "error.message").is_some() {
                let kept = doc::get(&d, "message").or_else(|| doc::get(&d, "event.original"));
                prop_assert_eq!(kept, Some(&Value::String(text)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Any text as a user agent (printable, control characters, pieces of real agents):
    /// no panic, and Elasticsearch's fields, with the text kept as `original`.
    #[test]
    fn user_agent_takes_any_string(ua in "(\\PC|\\pC|Mozilla/5\\.0 |\\(|\\)|; |[0-9._/]|Firefox|Chrome|Android|iPhone|Mac OS X|Windows NT)*") {
        static STEP: std::sync::OnceLock<skiff_modules::Pipeline> = std::sync::OnceLock::new();
        let p = STEP.get_or_init(|| {
            skiff_modules::Pipeline::compile("ua", &serde_json::json!([{"user_agent": {"field": "ua"}}]))
                .unwrap_or_else(|e| panic!("{e}"))
        });
        let mut d = Map::new();
        d.insert("ua".into(), Value::String(ua.clone()));
        p.run(&mut d);
        prop_assert_eq!(doc::get(&d, "user_agent.original"), Some(&Value::String(ua)));
        prop_assert!(doc::get(&d, "user_agent.name").is_some_and(Value::is_string));
        prop_assert!(doc::get(&d, "user_agent.device.name").is_some_and(Value::is_string));
        prop_assert!(doc::get(&d, "error.message").is_none());
    }
}
