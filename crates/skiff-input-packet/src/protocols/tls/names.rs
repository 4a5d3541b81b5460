//! Names of TLS code points as Packetbeat writes them: IANA cipher names from `tls-parser`'s
//! table, the rest from short tables of the values seen in practice (`(unknown:0x....)`
//! otherwise, as upstream).

/// `(unknown:0xabcd)`.
fn unknown(v: u16) -> String {
    format!("(unknown:0x{v:04x})")
}

/// The IANA name of a cipher suite.
pub fn cipher(id: u16) -> String {
    match (tls_parser::TlsCipherSuite::from_id(id), id) {
        (Some(c), _) => c.name.to_owned(),
        // GOST suites of the old draft, which tls-parser's IANA table leaves out.
        (None, 0x0080) => "TLS_GOSTR341094_WITH_28147_CNT_IMIT".into(),
        (None, 0x0081) => "TLS_GOSTR341001_WITH_28147_CNT_IMIT".into(),
        (None, _) => unknown(id),
    }
}

/// GREASE values (RFC 8701): `0x?a?a`, both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// (`tls.version_protocol`, `tls.version`).
pub fn version(v: u16) -> Option<(&'static str, &'static str)> {
    Some(match v {
        0x0300 => ("ssl", "3.0"),
        0x0301 => ("tls", "1.0"),
        0x0302 => ("tls", "1.1"),
        0x0303 => ("tls", "1.2"),
        0x0304 => ("tls", "1.3"),
        _ => return None,
    })
}

/// `TLS 1.2`.
pub fn version_name(v: u16) -> Option<String> {
    let (proto, n) = version(v)?;
    Some(format!("{} {n}", proto.to_uppercase()))
}

/// The raw `major.minor` of a hello (`3.3`).
pub fn raw_version(v: u16) -> String {
    format!("{}.{}", v >> 8, v & 0xff)
}

/// A compression method.
pub fn compression(c: u8) -> String {
    match c {
        0 => "NULL".into(),
        1 => "DEFLATE".into(),
        64 => "LZS".into(),
        _ => unknown(c.into()),
    }
}

/// An EC point format.
pub fn point_format(f: u8) -> String {
    match f {
        0 => "uncompressed".into(),
        1 => "ansiX962_compressed_prime".into(),
        2 => "ansiX962_compressed_char2".into(),
        _ => unknown(f.into()),
    }
}

/// A supported group (named curve or FFDHE group).
pub fn group(g: u16) -> String {
    let name = match g {
        19 => "secp192r1",
        21 => "secp224r1",
        23 => "secp256r1",
        24 => "secp384r1",
        25 => "secp521r1",
        29 => "x25519",
        30 => "x448",
        256 => "ffdhe2048",
        257 => "ffdhe3072",
        258 => "ffdhe4096",
        259 => "ffdhe6144",
        260 => "ffdhe8192",
        _ => return unknown(g),
    };
    name.into()
}

/// A signature scheme (RFC 8446 names).
pub fn sig_alg(s: u16) -> String {
    let name = match s {
        0x0201 => "rsa_pkcs1_sha1",
        0x0203 => "ecdsa_sha1",
        0x0401 => "rsa_pkcs1_sha256",
        0x0403 => "ecdsa_secp256r1_sha256",
        0x0501 => "rsa_pkcs1_sha384",
        0x0503 => "ecdsa_secp384r1_sha384",
        0x0601 => "rsa_pkcs1_sha512",
        0x0603 => "ecdsa_secp521r1_sha512",
        0x0804 => "rsa_pss_sha256",
        0x0805 => "rsa_pss_sha384",
        0x0806 => "rsa_pss_sha512",
        0x0807 => "ed25519",
        0x0808 => "ed448",
        _ => return unknown(s),
    };
    name.into()
}

/// An alert description.
pub fn alert(code: u8) -> String {
    let name = match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return unknown(code.into()),
    };
    name.into()
}

/// Extension names Packetbeat writes (others appear as their decimal number).
pub fn extension(t: u16) -> String {
    let name = match t {
        0 => "server_name_indication",
        1 => "max_fragment_length",
        5 => "status_request",
        10 => "supported_groups",
        11 => "ec_points_formats",
        13 => "signature_algorithms",
        16 => "application_layer_protocol_negotiation",
        35 => "session_ticket",
        43 => "supported_versions",
        65281 => "renegotiation_info",
        _ => return t.to_string(),
    };
    name.into()
}
