//! SMTP (RFC 5321), which Packetbeat never shipped: one event per command and its reply.
//!
//! The client's lines are commands (`MAIL FROM:<a@b>`); the server's replies are one or more
//! lines `ddd-text` ending with `ddd text`. Commands wait in a FIFO (PIPELINING sends several
//! at once) and each final reply takes the oldest. `DATA` is one transaction from the command
//! to the reply after the message's closing `.`: the `354` in between is not an event, and the
//! message size is `smtp.data.bytes`. After a `220` answer to `STARTTLS` the rest of the
//! connection is TLS: parsing stops, and the transaction says so (`smtp.starttls: true`).
//! The server's greeting has no command and makes no event.
//!
//! Fields (ECS spirit; documented in docs/packet.md): `smtp.request.command`,
//! `smtp.request.parameter`, `smtp.response.code`, `smtp.response.phrase`, `smtp.mail_from`,
//! `smtp.rcpt_to`, `smtp.data.bytes`, `smtp.starttls`, `event.action` (`smtp.<command>`),
//! `event.outcome`, and the legacy `method`/`query`/`request`/`response`.
//! This module is the example of docs/adding-a-protocol.md.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::Timestamp;

use crate::protocol::{
    BuildArgs, CloseReason, Cx, Dir, GapAction, Protocol, ProtocolPlugin, Session, StreamBuf,
    Transaction, Transport, expired,
};

/// `type: smtp`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "smtp",
    tcp: true,
    udp: false,
    default_ports: &[25, 587],
    build,
};

/// The `smtp` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `max_line_bytes` (default 64 KiB): a longer command or reply line is not SMTP; the
    /// direction's bytes are dropped.
    #[serde(default = "default_line")]
    pub max_line_bytes: usize,
}

fn default_line() -> usize {
    64 << 10
}

struct Settings {
    smtp: SmtpConfig,
    send_request: bool,
    send_response: bool,
    timeout: std::time::Duration,
}

struct Smtp {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let smtp: SmtpConfig = args.own.deserialize()?;
    Ok(Arc::new(Smtp {
        cfg: Arc::new(Settings {
            smtp,
            send_request: args.common.send_request,
            send_response: args.common.send_response,
            timeout: args.common.timeout(),
        }),
    }))
}

impl Protocol for Smtp {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(SmtpSession {
            cfg: self.cfg.clone(),
            client: None,
            commands: VecDeque::new(),
            reply: Vec::new(),
            in_data: false,
            tls: false,
        })
    }
}

/// One command waiting for its reply.
struct Command {
    ts: Timestamp,
    clock: Timestamp,
    verb: String,
    parameter: String,
    bytes: u64,
    text: String,
    /// DATA: the message's size once it has been sent.
    data: Option<u64>,
}

struct SmtpSession {
    cfg: Arc<Settings>,
    /// The client's direction, learnt from the first command (or the server's greeting).
    client: Option<Dir>,
    commands: VecDeque<Command>,
    /// Lines of the reply being read.
    reply: Vec<String>,
    /// Between `354` and the message's closing `.`.
    in_data: bool,
    /// After STARTTLS: nothing more is SMTP.
    tls: bool,
}

/// The most commands waiting for replies (PIPELINING sends a handful).
const MAX_PENDING: usize = 128;

fn take_line(buf: &mut StreamBuf, max: usize) -> Result<Option<(String, u64)>, ()> {
    let data = buf.data();
    match data.iter().position(|b| *b == b'\n') {
        Some(nl) => {
            let line = String::from_utf8_lossy(&data[..nl])
                .trim_end_matches('\r')
                .to_owned();
            buf.consume(nl + 1);
            Ok(Some((line, nl as u64 + 1)))
        }
        None if data.len() > max => Err(()),
        None => Ok(None),
    }
}

impl SmtpSession {
    fn client_bytes(&mut self, cx: &mut Cx<'_>, buf: &mut StreamBuf) {
        let max = self.cfg.smtp.max_line_bytes;
        if self.in_data {
            // The message: count it up to the line with a single `.`.
            loop {
                match take_line(buf, max) {
                    Ok(Some((line, n))) => {
                        if let Some(c) = self.commands.back_mut() {
                            c.bytes += n;
                            if line != "." {
                                *c.data.get_or_insert(0) += n;
                            }
                        }
                        if line == "." {
                            self.in_data = false;
                            break;
                        }
                    }
                    Ok(None) => return,
                    Err(()) => {
                        // A very long line inside a message is still message.
                        let n = buf.len() as u64;
                        buf.clear();
                        if let Some(c) = self.commands.back_mut() {
                            c.bytes += n;
                            *c.data.get_or_insert(0) += n;
                        }
                        return;
                    }
                }
            }
        }
        loop {
            let (line, n) = match take_line(buf, max) {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(()) => {
                    buf.clear();
                    return;
                }
            };
            if line.is_empty() {
                continue;
            }
            let (verb, parameter) = match line.split_once(' ') {
                Some((v, p)) => (v.to_ascii_uppercase(), p.trim().to_owned()),
                None => (line.to_ascii_uppercase(), String::new()),
            };
            if self.commands.len() >= MAX_PENDING {
                self.commands.pop_front();
            }
            self.commands.push_back(Command {
                ts: cx.now,
                clock: cx.clock,
                verb,
                parameter,
                bytes: n,
                text: line,
                data: None,
            });
        }
    }

    fn server_bytes(&mut self, cx: &mut Cx<'_>, buf: &mut StreamBuf) {
        let max = self.cfg.smtp.max_line_bytes;
        loop {
            let (line, _) = match take_line(buf, max) {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(()) => {
                    buf.clear();
                    self.reply.clear();
                    return;
                }
            };
            let last = line.as_bytes().get(3) != Some(&b'-');
            self.reply.push(line);
            if !last {
                continue;
            }
            let lines = std::mem::take(&mut self.reply);
            self.reply_done(cx, lines);
            if self.tls {
                buf.clear();
                return;
            }
        }
    }

    fn reply_done(&mut self, cx: &mut Cx<'_>, lines: Vec<String>) {
        let code: u16 = lines
            .first()
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        // DATA's 354 asks for the message: the transaction waits for the final reply.
        if code == 354 && self.commands.front().is_some_and(|c| c.verb == "DATA") {
            self.in_data = true;
            return;
        }
        let Some(cmd) = self.commands.pop_front() else {
            return; // the greeting, or a reply to a command sent before the capture began
        };
        let Some(client) = self.client else { return };
        let phrase: Vec<&str> = lines.iter().map(|l| l.get(4..).unwrap_or("")).collect();
        let reply_bytes: u64 = lines.iter().map(|l| l.len() as u64 + 2).sum();
        let mut tx = Transaction::new("smtp", client);
        tx.start = Some(cmd.ts);
        tx.end = Some(cx.now);
        tx.request_bytes = Some(cmd.bytes);
        tx.response_bytes = Some(reply_bytes);
        tx.set("smtp.request.command", cmd.verb.clone());
        if !cmd.parameter.is_empty() {
            tx.set("smtp.request.parameter", cmd.parameter.clone());
        }
        tx.set("smtp.response.code", code);
        tx.set("smtp.response.phrase", phrase.join("\n"));
        tx.set(
            "event.action",
            format!("smtp.{}", cmd.verb.to_ascii_lowercase()),
        );
        tx.set("method", cmd.verb.clone());
        tx.set("query", cmd.text.clone());
        let upper = cmd.parameter.to_ascii_uppercase();
        let address = |p: &str| {
            let p = p.trim();
            let end = p.find('>').map_or(p.len(), |i| i + 1);
            p[..end].trim_matches(['<', '>']).to_owned()
        };
        if cmd.verb == "MAIL" && upper.starts_with("FROM:") {
            tx.set("smtp.mail_from", address(&cmd.parameter[5..]));
        }
        if cmd.verb == "RCPT" && upper.starts_with("TO:") {
            tx.set("smtp.rcpt_to", address(&cmd.parameter[3..]));
        }
        if let Some(n) = cmd.data {
            tx.set("smtp.data.bytes", n);
        }
        if cmd.verb == "STARTTLS" && code == 220 {
            self.tls = true;
            tx.set("smtp.starttls", true);
            tx.note("STARTTLS: the rest of the connection is TLS and is not parsed");
        }
        let failed = code >= 400;
        tx.set("event.outcome", if failed { "failure" } else { "success" });
        if failed {
            tx.status = "Error";
        }
        if self.cfg.send_request {
            tx.set("request", cmd.text);
        }
        if self.cfg.send_response {
            tx.set("response", lines.join("\r\n"));
        }
        cx.emit(tx);
    }
}

impl Session for SmtpSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        if self.tls {
            buf.clear();
            return;
        }
        if self.client.is_none() {
            // A reply code starts the server's lines; anything else is the client's.
            let d = buf.data();
            let is_reply = d.len() >= 4 && d[..3].iter().all(u8::is_ascii_digit);
            self.client = Some(if is_reply { dir.flip() } else { dir });
        }
        if Some(dir) == self.client {
            self.client_bytes(cx, buf);
        } else {
            self.server_bytes(cx, buf);
        }
    }

    fn gap(&mut self, _cx: &mut Cx<'_>, dir: Dir, missing: u64, _buf: &mut StreamBuf) -> GapAction {
        // Inside a message the missing bytes are only message: count them and go on.
        if self.in_data && Some(dir) == self.client {
            if let Some(c) = self.commands.back_mut() {
                c.bytes += missing;
                *c.data.get_or_insert(0) += missing;
            }
            return GapAction::Continue;
        }
        GapAction::Drop
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let timeout = self.cfg.timeout;
        while self
            .commands
            .front()
            .is_some_and(|c| expired(c.clock, cx.clock, timeout) && !self.in_data)
        {
            self.commands.pop_front();
        }
    }

    fn close(&mut self, _cx: &mut Cx<'_>, _why: CloseReason) {
        // Commands without a reply are dropped, as Packetbeat drops the unanswered requests of
        // most protocols.
        self.commands.clear();
    }

    fn held_bytes(&self) -> usize {
        self.commands
            .iter()
            .map(|c| 128 + c.text.len())
            .sum::<usize>()
            + self.reply.iter().map(String::len).sum::<usize>()
    }
}
