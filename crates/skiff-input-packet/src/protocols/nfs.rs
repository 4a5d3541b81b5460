//! NFS v3 and v4 over ONC-RPC (TCP record marking), as Packetbeat's `nfs` protocol: one event
//! per call and reply, paired by RPC xid.
//!
//! Hand-written XDR: the record marks (a last-fragment bit and a 31-bit length), the RPC
//! call and reply headers (credentials, verifier, accept status) and the first words of the
//! NFS arguments and results — the procedure (v3) or, for a v4 COMPOUND, its tag, minor
//! version and main operation: the first one that is not bookkeeping (SEQUENCE, PUTFH,
//! PUTROOTFH, GETFH, SAVEFH, RESTOREFH, GETATTR), whose arguments are skipped to reach it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::Timestamp;

use crate::protocol::{
    BuildArgs, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction, Transport,
    duration_nanos, expired,
};
use crate::protocols::common::Common;

/// `type: nfs`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "nfs",
    tcp: true,
    udp: false,
    default_ports: &[2049],
    build,
};

/// The `nfs` options: none beyond the common ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsConfig {}

struct Nfs {
    common: Arc<Common>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let _: NfsConfig = args.own.deserialize()?;
    Ok(Arc::new(Nfs {
        common: Arc::new(Common::of(args, &PLUGIN)),
    }))
}

impl Protocol for Nfs {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(NfsSession {
            common: self.common.clone(),
            frags: [Vec::new(), Vec::new()],
            calls: HashMap::new(),
        })
    }
}

/// The largest RPC record kept.
const MAX_RECORD: usize = 16 << 20;
/// Calls waiting per connection.
const MAX_CALLS: usize = 4096;
const NFS_PROGRAM: u32 = 100_003;

struct Call {
    ts: Timestamp,
    clock: Timestamp,
    bytes: u64,
    version: u32,
    minor: Option<u32>,
    tag: Option<String>,
    opcode: String,
    flavor: &'static str,
    cred: Vec<(&'static str, skiff_event::Value)>,
}

struct NfsSession {
    common: Arc<Common>,
    /// Fragments of the record being assembled, per direction.
    frags: [Vec<u8>; 2],
    calls: HashMap<u32, Call>,
}

struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn u32(&mut self) -> Option<u32> {
        let v = u32::from_be_bytes(self.b.get(self.at..self.at + 4)?.try_into().ok()?);
        self.at += 4;
        Some(v)
    }
    fn opaque(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n.div_ceil(4) * 4;
        Some(v)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(())
    }
}

fn flavor_name(f: u32) -> &'static str {
    match f {
        0 => "none",
        1 => "unix",
        2 => "short",
        3 => "des",
        6 => "rpcsec_gss",
        _ => "unknown",
    }
}

fn v3_proc(p: u32) -> &'static str {
    const NAMES: [&str; 22] = [
        "NULL",
        "GETATTR",
        "SETATTR",
        "LOOKUP",
        "ACCESS",
        "READLINK",
        "READ",
        "WRITE",
        "CREATE",
        "MKDIR",
        "SYMLINK",
        "MKNOD",
        "REMOVE",
        "RMDIR",
        "RENAME",
        "LINK",
        "READDIR",
        "READDIRPLUS",
        "FSSTAT",
        "FSINFO",
        "PATHCONF",
        "COMMIT",
    ];
    NAMES.get(p as usize).copied().unwrap_or("UNKNOWN")
}

fn v4_op(op: u32) -> String {
    const NAMES: [&str; 69] = [
        "ACCESS",
        "CLOSE",
        "COMMIT",
        "CREATE",
        "DELEGPURGE",
        "DELEGRETURN",
        "GETATTR",
        "GETFH",
        "LINK",
        "LOCK",
        "LOCKT",
        "LOCKU",
        "LOOKUP",
        "LOOKUPP",
        "NVERIFY",
        "OPEN",
        "OPENATTR",
        "OPEN_CONFIRM",
        "OPEN_DOWNGRADE",
        "PUTFH",
        "PUTPUBFH",
        "PUTROOTFH",
        "READ",
        "READDIR",
        "READLINK",
        "REMOVE",
        "RENAME",
        "RENEW",
        "RESTOREFH",
        "SAVEFH",
        "SECINFO",
        "SETATTR",
        "SETCLIENTID",
        "SETCLIENTID_CONFIRM",
        "VERIFY",
        "WRITE",
        "RELEASE_LOCKOWNER",
        "BACKCHANNEL_CTL",
        "BIND_CONN_TO_SESSION",
        "EXCHANGE_ID",
        "CREATE_SESSION",
        "DESTROY_SESSION",
        "FREE_STATEID",
        "GET_DIR_DELEGATION",
        "GETDEVICEINFO",
        "GETDEVICELIST",
        "LAYOUTCOMMIT",
        "LAYOUTGET",
        "LAYOUTRETURN",
        "SECINFO_NO_NAME",
        "SEQUENCE",
        "SET_SSV",
        "TEST_STATEID",
        "WANT_DELEGATION",
        "DESTROY_CLIENTID",
        "RECLAIM_COMPLETE",
        "ALLOCATE",
        "COPY",
        "COPY_NOTIFY",
        "DEALLOCATE",
        "IO_ADVISE",
        "LAYOUTERROR",
        "LAYOUTSTATS",
        "OFFLOAD_CANCEL",
        "OFFLOAD_STATUS",
        "READ_PLUS",
        "SEEK",
        "WRITE_SAME",
        "CLONE",
    ];
    match op {
        3..=71 => NAMES[(op - 3) as usize].to_owned(),
        10044 => "ILLEGAL".into(),
        _ => format!("UNKNOWN_{op}"),
    }
}

fn status_name(s: u32) -> String {
    let n = match s {
        0 => "NFS_OK",
        1 => "NFSERR_PERM",
        2 => "NFSERR_NOENT",
        5 => "NFSERR_IO",
        6 => "NFSERR_NXIO",
        13 => "NFSERR_ACCES",
        17 => "NFSERR_EXIST",
        18 => "NFSERR_XDEV",
        19 => "NFSERR_NODEV",
        20 => "NFSERR_NOTDIR",
        21 => "NFSERR_ISDIR",
        22 => "NFSERR_INVAL",
        27 => "NFSERR_FBIG",
        28 => "NFSERR_NOSPC",
        30 => "NFSERR_ROFS",
        31 => "NFSERR_MLINK",
        63 => "NFSERR_NAMETOOLONG",
        66 => "NFSERR_NOTEMPTY",
        69 => "NFSERR_DQUOT",
        70 => "NFSERR_STALE",
        71 => "NFSERR_REMOTE",
        10001 => "NFSERR_BADHANDLE",
        10002 => "NFSERR_NOT_SYNC",
        10003 => "NFSERR_BAD_COOKIE",
        10004 => "NFSERR_NOTSUPP",
        10005 => "NFSERR_TOOSMALL",
        10006 => "NFSERR_SERVERFAULT",
        10007 => "NFSERR_BADTYPE",
        10008 => "NFSERR_DELAY",
        10009 => "NFSERR_SAME",
        10010 => "NFSERR_DENIED",
        10011 => "NFSERR_EXPIRED",
        10012 => "NFSERR_LOCKED",
        10013 => "NFSERR_GRACE",
        10014 => "NFSERR_FHEXPIRED",
        10015 => "NFSERR_SHARE_DENIED",
        10016 => "NFSERR_WRONGSEC",
        10017 => "NFSERR_CLID_INUSE",
        10018 => "NFSERR_RESOURCE",
        10019 => "NFSERR_MOVED",
        10020 => "NFSERR_NOFILEHANDLE",
        10021 => "NFSERR_MINOR_VERS_MISMATCH",
        10022 => "NFSERR_STALE_CLIENTID",
        10023 => "NFSERR_STALE_STATEID",
        10024 => "NFSERR_OLD_STATEID",
        10025 => "NFSERR_BAD_STATEID",
        10026 => "NFSERR_BAD_SEQID",
        10036 => "NFSERR_BADXDR",
        10044 => "NFSERR_OP_ILLEGAL",
        10052 => "NFSERR_BADSESSION",
        10053 => "NFSERR_BADSLOT",
        10063 => "NFSERR_SEQ_MISORDERED",
        10071 => "NFSERR_OP_NOT_IN_SESSION",
        _ => return format!("NFSERR_{s}"),
    };
    n.to_owned()
}

/// Skips the arguments of a bookkeeping v4 operation; None when `op` is not one.
fn skip_v4_args(r: &mut Rd<'_>, op: u32) -> Option<Option<()>> {
    Some(match op {
        53 => r.skip(16 + 16).map(|_| ()),  // SEQUENCE
        22 => r.opaque().map(|_| ()),       // PUTFH
        23 | 24 | 10 | 31 | 32 => Some(()), // PUTPUBFH, PUTROOTFH, GETFH, RESTOREFH, SAVEFH
        9 => {
            // GETATTR: a bitmap
            let n = r.u32();
            n.and_then(|n| r.skip((n as usize).checked_mul(4)?))
        }
        _ => return None,
    })
}

impl NfsSession {
    fn call(&mut self, cx: &Cx<'_>, rec: &[u8]) -> Option<()> {
        let mut r = Rd { b: rec, at: 0 };
        let xid = r.u32()?;
        let _type = r.u32()?;
        if r.u32()? != 2 || r.u32()? != NFS_PROGRAM {
            return None;
        }
        let version = r.u32()?;
        let proc_ = r.u32()?;
        let flavor = r.u32()?;
        let cred = r.opaque()?;
        let mut fields = Vec::new();
        if flavor == 1 {
            let mut c = Rd { b: cred, at: 0 };
            if let (Some(stamp), Some(machine), Some(uid), Some(gid)) =
                (c.u32(), c.opaque(), c.u32(), c.u32())
            {
                fields.push(("stamp", stamp.into()));
                fields.push((
                    "machinename",
                    String::from_utf8_lossy(machine).into_owned().into(),
                ));
                fields.push(("uid", uid.into()));
                fields.push(("gid", gid.into()));
                if let Some(n) = c.u32() {
                    let gids: Vec<u32> = (0..n.min(16)).map_while(|_| c.u32()).collect();
                    fields.push(("gids", gids.into()));
                }
            }
        }
        let _verf_flavor = r.u32()?;
        r.opaque()?;
        let mut call = Call {
            ts: cx.now,
            clock: cx.clock,
            bytes: rec.len() as u64 + 4,
            version,
            minor: None,
            tag: None,
            opcode: String::new(),
            flavor: flavor_name(flavor),
            cred: fields,
        };
        match version {
            3 => call.opcode = v3_proc(proc_).into(),
            4 if proc_ == 0 => call.opcode = "NULL".into(),
            4 => {
                if flavor != 6 {
                    let tag = r.opaque()?;
                    call.tag = Some(String::from_utf8_lossy(tag).into_owned());
                    call.minor = Some(r.u32()?);
                    let n = r.u32()?;
                    let mut main = String::from("COMPOUND");
                    for _ in 0..n.min(64) {
                        let Some(op) = r.u32() else { break };
                        main = v4_op(op);
                        match skip_v4_args(&mut r, op) {
                            Some(Some(())) => continue,
                            _ => break,
                        }
                    }
                    call.opcode = main;
                } else {
                    // RPCSEC_GSS bodies may be sealed: only the procedure is known.
                    call.opcode = "COMPOUND".into();
                }
            }
            _ => return None,
        }
        if self.calls.len() < MAX_CALLS {
            self.calls.insert(xid, call);
        }
        Some(())
    }

    fn reply(&mut self, cx: &mut Cx<'_>, rec: &[u8]) -> Option<()> {
        let mut r = Rd { b: rec, at: 0 };
        let xid = r.u32()?;
        let _type = r.u32()?;
        let call = self.calls.remove(&xid)?;
        let mut tx = Transaction::new("nfs", self.common.client_dir(cx.conn));
        tx.start = Some(call.ts);
        tx.end = Some(cx.now);
        tx.request_bytes = Some(call.bytes);
        tx.response_bytes = Some(rec.len() as u64 + 4);
        tx.set("network.protocol", format!("nfsv{}", call.version));
        tx.set("rpc.xid", format!("{xid:#x}"));
        tx.set("rpc.auth_flavor", call.flavor);
        for (k, v) in call.cred {
            tx.set(&format!("rpc.cred.{k}"), v);
        }
        if let Some(d) = duration_nanos(call.ts, cx.now) {
            tx.set("rpc.time", d);
            tx.set(
                "rpc.time_str",
                format!("{:?}", std::time::Duration::from_nanos(d as u64)),
            );
        }
        tx.set("nfs.version", call.version);
        if let Some(m) = call.minor {
            tx.set("nfs.minor_version", m);
        }
        if let Some(t) = call.tag {
            tx.set("nfs.tag", t);
        }
        tx.set("nfs.opcode", call.opcode);
        let rpc_status = match r.u32()? {
            0 => {
                let _verf = r.u32()?;
                r.opaque()?;
                match r.u32()? {
                    0 => "success",
                    1 => "prog_unavail",
                    2 => "prog_mismatch",
                    3 => "proc_unavail",
                    4 => "garbage_args",
                    _ => "system_err",
                }
            }
            _ => "msg_denied",
        };
        tx.set("rpc.status", rpc_status);
        if rpc_status != "success" {
            tx.status = "Error";
        } else if let Some(s) = r.u32() {
            // NULL has no result; every other procedure's result starts with its status.
            if s != 0 {
                tx.status = "Error";
            }
            tx.set("nfs.status", status_name(s));
        }
        cx.emit(tx);
        Some(())
    }

    fn record(&mut self, cx: &mut Cx<'_>, rec: &[u8]) {
        let Some(t) = rec.get(4..8) else { return };
        match u32::from_be_bytes([t[0], t[1], t[2], t[3]]) {
            0 => {
                self.call(cx, rec);
            }
            1 => {
                self.reply(cx, rec);
            }
            _ => {}
        }
    }
}

impl Session for NfsSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        let d = dir.index();
        loop {
            let data = buf.data();
            if data.len() < 4 {
                return;
            }
            let mark = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let last = mark & 0x8000_0000 != 0;
            let len = (mark & 0x7fff_ffff) as usize;
            if len > MAX_RECORD || self.frags[d].len() + len > MAX_RECORD {
                buf.clear();
                self.frags[d].clear();
                return;
            }
            if data.len() < 4 + len {
                return;
            }
            self.frags[d].extend_from_slice(&data[4..4 + len]);
            buf.consume(4 + len);
            if last {
                let rec = std::mem::take(&mut self.frags[d]);
                self.record(cx, &rec);
            }
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let t = self.common.timeout;
        let old: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, c)| expired(c.clock, cx.clock, t))
            .map(|(x, _)| *x)
            .collect();
        for xid in old {
            if let Some(c) = self.calls.remove(&xid) {
                let mut tx = Transaction::new("nfs", self.common.client_dir(cx.conn));
                tx.start = Some(c.ts);
                tx.request_bytes = Some(c.bytes);
                tx.status = "NO_REPLY";
                tx.set("network.protocol", format!("nfsv{}", c.version));
                tx.set("rpc.xid", format!("{xid:#x}"));
                tx.set("rpc.auth_flavor", c.flavor);
                tx.set("nfs.version", c.version);
                tx.set("nfs.opcode", c.opcode);
                cx.emit(tx);
            }
        }
    }

    fn held_bytes(&self) -> usize {
        self.frags.iter().map(Vec::capacity).sum::<usize>() + self.calls.len() * 256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(chunks in crate::protocols::fuzzing::chunks(&[
            b"\x80\x00\x00\x40\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01\x86\xa3\x00\x00\x00\x04\x00\x00\x00\x01",
            b"\x80\x00\x00\x20\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00",
            b"\x00\x00\x00\x10",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, Transport::Tcp, 2049, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 2 * 1024 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
