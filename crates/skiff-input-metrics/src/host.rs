//! Hosts as written in `hosts`, and the `service.address` Metricbeat reports for them: for a
//! URL or DSN the `host[:port]` without scheme, credentials or path, otherwise the string as
//! configured.

/// One entry of `hosts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// As configured.
    pub raw: String,
    /// `service.address`.
    pub address: String,
}

impl HostSpec {
    /// Parses a configured host.
    pub fn new(raw: &str) -> HostSpec {
        HostSpec {
            raw: raw.to_owned(),
            address: address_of(raw),
        }
    }
}

/// `service.address` of a configured host.
pub fn address_of(raw: &str) -> String {
    // A Go MySQL DSN: `user:pass@tcp(127.0.0.1:3306)/db`.
    if let Some(start) = raw.find("tcp(")
        && let Some(len) = raw[start + 4..].find(')')
    {
        return raw[start + 4..start + 4 + len].to_owned();
    }
    // A Go MySQL DSN over a socket: `root@unix(/run/mysqld/mysqld.sock)/`.
    if let Some(start) = raw.find("unix(")
        && let Some(len) = raw[start + 5..].find(')')
    {
        return raw[start + 5..start + 5 + len].to_owned();
    }
    if let Some(path) = raw.strip_prefix("unix://") {
        return path.to_owned();
    }
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    match url::Url::parse(&with_scheme) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => raw.to_owned(),
        },
        Err(_) => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_drop_scheme_credentials_and_path() {
        assert_eq!(
            address_of("http://u:p@127.0.0.1:6060/debug/vars"),
            "127.0.0.1:6060"
        );
        assert_eq!(address_of("localhost:6379"), "localhost:6379");
        assert_eq!(
            address_of("root:secret@tcp(127.0.0.1:3306)/"),
            "127.0.0.1:3306"
        );
        assert_eq!(
            address_of("postgres://localhost:5432?sslmode=disable"),
            "localhost:5432"
        );
        assert_eq!(
            address_of("unix:///var/run/docker.sock"),
            "/var/run/docker.sock"
        );
        assert_eq!(address_of("example.org"), "example.org");
        assert_eq!(
            address_of("root@unix(/run/mysqld/mysqld.sock)/"),
            "/run/mysqld/mysqld.sock"
        );
    }
}
