//! Hiding secrets before a configuration is shown (`skiff export config`).

use crate::node::{Node, NodeValue};

/// What a masked value is replaced with.
pub const MASK: &str = "xxxxx";

/// Key names that always hold a secret (compared case-insensitively).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passphrase",
    "passwd",
    "api_key",
    "apikey",
    "key_passphrase",
    "token",
    "secret",
    "client_secret",
    "secret_key",
    "access_key_secret",
    "secret_access_key",
    "session_token",
    "sasl_password",
    "private_key_passphrase",
];

/// Key endings that hold a secret (`ldap_password`, `access_token`, ...).
const SECRET_SUFFIXES: &[&str] = &[
    "_password",
    "password",
    "_passphrase",
    "_token",
    "_secret",
    "_api_key",
    "_apikey",
];

/// Is `key` (one key, not a path) the name of a secret setting?
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str()) || SECRET_SUFFIXES.iter().any(|s| k.ends_with(s))
}

/// Replace the value of every secret-looking key (`password`, `api_key`,
/// `token`, `*_password`, ...; see [`is_secret_key`]) with `"xxxxx"`, at any
/// depth, including inside lists. Empty values are left empty. Passwords in
/// URLs (`https://user:pw@host`) are masked too.
pub fn mask_secrets(node: &mut Node) {
    match &mut node.value {
        NodeValue::Map(entries) => {
            for (k, v) in entries {
                if is_secret_key(k) && !matches!(v.value, NodeValue::Null) {
                    v.value = NodeValue::String(MASK.to_string());
                } else {
                    mask_secrets(v);
                }
            }
        }
        NodeValue::Seq(items) => items.iter_mut().for_each(mask_secrets),
        NodeValue::String(s) => {
            if let Some(masked) = mask_url_password(s) {
                *s = masked;
            }
        }
        _ => {}
    }
}

/// `scheme://user:secret@host/...` -> `scheme://user:xxxxx@host/...`.
fn mask_url_password(s: &str) -> Option<String> {
    let start = s.find("://")? + 3;
    let rest = &s[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(format!(
        "{}{}:{MASK}{}",
        &s[..start],
        &rest[..colon],
        &rest[at..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    #[test]
    fn masks_secret_keys_everywhere() {
        let mut n = parse_str(
            concat!(
                "output.elasticsearch:\n",
                "  username: elastic\n",
                "  password: changeme\n",
                "  api_key: id:key\n",
                "  hosts: ['https://u:pw@es:9200/x', 'http://es2:9200']\n",
                "  ssl.key_passphrase: pp\n",
                "  ssl.key: /etc/key.pem\n",
                "output.kafka.sasl.PASSWORD: k\n",
                "inputs:\n",
                "  - auth.bearer_token: abc\n",
                "    auth.bearer_token_file: /run/token\n",
                "    ldap_password: x\n",
                "    secret: {nested: 1}\n",
                "    token:\n",
            ),
            None,
        )
        .unwrap();
        mask_secrets(&mut n);
        let j = n.to_json();
        let es = &j["output"]["elasticsearch"];
        assert_eq!(es["username"], "elastic");
        assert_eq!(es["password"], MASK);
        assert_eq!(es["api_key"], MASK);
        assert_eq!(es["ssl"]["key_passphrase"], MASK);
        assert_eq!(es["ssl"]["key"], "/etc/key.pem");
        assert_eq!(es["hosts"][0], "https://u:xxxxx@es:9200/x");
        assert_eq!(es["hosts"][1], "http://es2:9200");
        assert_eq!(j["output"]["kafka"]["sasl"]["PASSWORD"], MASK);
        let input = &j["inputs"][0];
        assert_eq!(input["auth"]["bearer_token"], MASK);
        assert_eq!(input["auth"]["bearer_token_file"], "/run/token");
        assert_eq!(input["ldap_password"], MASK);
        assert_eq!(input["secret"], MASK);
        assert_eq!(input["token"], serde_json::Value::Null);
    }
}
