//! SMTP against a scripted session (the corpus has no SMTP capture): what RFC 5321's examples
//! look like on the wire, written to a capture by the test. The live test against Python's
//! SMTP server is missing (see docs/packet.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use skiff_input_packet::testing;

#[test]
fn an_smtp_session_gives_one_event_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("smtp.pcap");
    let session: &[(bool, &[u8])] = &[
        (false, b"220 mail.example.org ESMTP ready\r\n"),
        (true, b"EHLO client.example.com\r\n"),
        (
            false,
            b"250-mail.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
        ),
        // PIPELINING: two commands in one segment.
        (
            true,
            b"MAIL FROM:<alice@example.com> SIZE=120\r\nRCPT TO:<bob@example.org>\r\n",
        ),
        (false, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
        (true, b"RCPT TO:<nobody@example.org>\r\n"),
        (false, b"550 5.1.1 No such user\r\n"),
        (true, b"DATA\r\n"),
        (false, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (true, b"Subject: hi\r\n\r\nHello Bob.\r\n"),
        (true, b".\r\n"),
        (false, b"250 2.0.0 Ok: queued\r\n"),
        (true, b"STARTTLS\r\n"),
        (false, b"220 2.0.0 Ready to start TLS\r\n"),
        (
            true,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary TLS follows",
        ),
    ];
    testing::write_conversation(&pcap, 25, session).unwrap();
    let evs = testing::events(&pcap, "packetbeat.protocols: [{type: smtp, ports: [25]}]").unwrap();
    let col = |k: &str| -> Vec<String> {
        evs.iter()
            .map(|e| {
                e.get(k)
                    .map(|v| v.to_string().trim_matches('"').to_owned())
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(
        col("smtp.request.command"),
        ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "STARTTLS"]
    );
    assert_eq!(
        col("smtp.response.code"),
        ["250", "250", "250", "550", "250", "220"]
    );
    assert_eq!(col("status"), ["OK", "OK", "OK", "Error", "OK", "OK"]);
    assert_eq!(evs[1]["smtp.mail_from"], "alice@example.com");
    assert_eq!(evs[2]["smtp.rcpt_to"], "bob@example.org");
    assert_eq!(
        evs[0]["smtp.response.phrase"],
        "mail.example.org\nPIPELINING\nSTARTTLS"
    );
    assert_eq!(evs[4]["smtp.data.bytes"], 27);
    assert_eq!(evs[5]["smtp.starttls"], true);
    for e in &evs {
        assert_eq!(e["client.ip"], "10.0.0.1");
        assert_eq!(e["server.port"], 25);
        assert_eq!(e["network.protocol"], "smtp");
        assert!(e.contains_key("network.community_id"));
    }
}
