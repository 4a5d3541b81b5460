//! "Did you mean ...?" for misspelled keys and values.

/// Names people reach for that mean another key in Beats configs.
/// `(written, intended)`; only offered when `intended` is a candidate.
const ALIASES: &[(&str, &str)] = &[
    ("tls", "ssl"),
    ("host", "hosts"),
    ("hosts", "host"),
    ("url", "hosts"),
    ("urls", "hosts"),
    ("server", "hosts"),
    ("servers", "hosts"),
    ("user", "username"),
    ("username", "user"),
    ("pass", "password"),
    ("passwd", "password"),
    ("pwd", "password"),
    ("cert", "certificate"),
    ("ssl_certificate", "certificate"),
    ("ssl_key", "key"),
    ("key_file", "key"),
    ("ca", "certificate_authorities"),
    ("cafile", "certificate_authorities"),
    ("ca_file", "certificate_authorities"),
    ("certificate_authority", "certificate_authorities"),
    ("verify", "verification_mode"),
    ("path", "paths"),
    ("paths", "path"),
    ("file", "filename"),
    ("filename", "path"),
    ("enable", "enabled"),
    ("disabled", "enabled"),
    ("index_name", "index"),
    ("workers", "worker"),
    ("level", "logging.level"),
    // Keys of older Filebeat versions (the `log` input, libbeat 6/7) and their equivalents.
    ("harvester_buffer_size", "buffer_size"),
    ("to_console", "to_stderr"),
    ("to_syslog", "to_stderr"),
    ("close_inactive", "close.on_state_change.inactive"),
    ("close_renamed", "close.on_state_change.renamed"),
    ("close_removed", "close.on_state_change.removed"),
    ("scan_frequency", "prospector.scanner.check_interval"),
    ("max_bytes", "message_max_bytes"),
    ("compression_level", "compression"),
];

/// The candidate `word` most likely meant, if any is close enough: an exact
/// case-insensitive match, then the alias table, then the closest name by
/// Jaro-Winkler similarity (at least 0.8) or a Levenshtein distance of at
/// most 2 for short words.
pub fn suggest(word: &str, candidates: &[&str]) -> Option<String> {
    if candidates.is_empty() || candidates.contains(&word) {
        return None;
    }
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(c.to_string());
    }
    let lower = word.to_ascii_lowercase();
    for (written, intended) in ALIASES {
        let head = intended.split('.').next().unwrap_or(intended);
        if *written == lower && candidates.contains(&head) {
            return Some(intended.to_string());
        }
    }
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        let close =
            score >= 0.8 || (strsim::levenshtein(&lower, c) <= 2 && word.len().min(c.len()) >= 3);
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("pth", &["path", "codec"]).as_deref(), Some("path"));
        assert_eq!(suggest("tls", &["hosts", "ssl"]).as_deref(), Some("ssl"));
        assert_eq!(
            suggest("host", &["hosts", "index"]).as_deref(),
            Some("hosts")
        );
        assert_eq!(suggest("Path", &["path"]).as_deref(), Some("path"));
        assert_eq!(
            suggest("hostz", &["hosts", "index"]).as_deref(),
            Some("hosts")
        );
        assert_eq!(suggest("zzzzzz", &["hosts", "index"]), None);
        // The alias only applies when the intended key exists.
        assert_eq!(suggest("tls", &["hosts"]), None);
        assert_eq!(suggest("path", &["path"]), None);
    }
}
