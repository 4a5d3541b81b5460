//! Fuzzing the RESP reply reader: any bytes a server sends give a reply or an error, never a
//! panic, a hang or an allocation larger than what arrived (bounded by the parser's limits).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use skiff_output_redis::resp::{Conn, Reply};
use tokio::io::AsyncWriteExt;

/// Reads replies from `bytes` until an error (the stream ends with EOF, so reading stops).
fn read_all(rt: &tokio::runtime::Runtime, bytes: Vec<u8>) -> Vec<Result<Reply, String>> {
    rt.block_on(async move {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        b.write_all(&bytes).await.unwrap();
        drop(b);
        let mut conn = Conn::new(Box::new(a));
        let mut out = Vec::new();
        // Each successful reply consumes at least 3 bytes, so this ends.
        loop {
            match conn.read().await {
                Ok(r) => out.push(Ok(r)),
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Valid replies of every type, some nested.
fn valid_reply() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        "[a-zA-Z ]{0,12}".prop_map(|s| format!("+{s}\r\n").into_bytes()),
        "[A-Z]{1,8} [a-z ]{0,12}".prop_map(|s| format!("-{s}\r\n").into_bytes()),
        any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
            let mut v = format!("${}\r\n", b.len()).into_bytes();
            v.extend_from_slice(&b);
            v.extend_from_slice(b"\r\n");
            v
        }),
        Just(b"$-1\r\n".to_vec()),
        Just(b"*-1\r\n".to_vec()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(|items| {
            let mut v = format!("*{}\r\n", items.len()).into_bytes();
            for i in items {
                v.extend_from_slice(&i);
            }
            v
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let rt = runtime();
        let out = read_all(&rt, bytes);
        prop_assert!(out.last().is_some_and(|r| r.is_err()));
    }

    #[test]
    fn valid_replies_parse_and_mutated_ones_never_panic(
        replies in proptest::collection::vec(valid_reply(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let rt = runtime();
        let bytes: Vec<u8> = replies.concat();
        let out = read_all(&rt, bytes.clone());
        // Every valid reply is read, then EOF.
        prop_assert_eq!(out.len(), replies.len() + 1);
        prop_assert!(out[..replies.len()].iter().all(|r| r.is_ok()));

        let mut mutated = bytes.clone();
        for (at, b) in &flips {
            let i = at.index(mutated.len());
            mutated[i] = *b;
        }
        let _ = read_all(&rt, mutated);
        let truncated = bytes[..cut.index(bytes.len())].to_vec();
        let out = read_all(&rt, truncated);
        prop_assert!(out.last().is_some_and(|r| r.is_err()));
    }
}

/// Inputs once found to break the reader, kept as regressions.
#[test]
fn known_hostile_inputs() {
    let rt = runtime();
    for bytes in [
        "é…\r\n".as_bytes().to_vec(),
        b"*-7\r\n".to_vec(),
        b"\xc3\r\n".to_vec(),
        b"\r\n".to_vec(),
        b"$-9223372036854775808\r\n".to_vec(),
        b"*9223372036854775807\r\n".to_vec(),
        b":\r\n".to_vec(),
    ] {
        let out = read_all(&rt, bytes.clone());
        assert!(
            out.first().is_some_and(|r| r.is_err()),
            "{bytes:?} gave {out:?}"
        );
    }
}
