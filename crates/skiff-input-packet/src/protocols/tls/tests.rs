//! Unit tests of the pieces with a published answer.

#![allow(clippy::unwrap_used)]

use super::names;

#[test]
fn grease_values_are_recognised() {
    assert!(names::is_grease(0x0a0a));
    assert!(names::is_grease(0xfafa));
    assert!(!names::is_grease(0x0a1a));
    assert!(!names::is_grease(0x1301));
}

#[test]
fn cipher_names_come_from_the_iana_table() {
    assert_eq!(
        names::cipher(0xc02f),
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    );
    assert_eq!(names::cipher(0xff85), "(unknown:0xff85)");
}
