//! Reading pcap and pcapng files (the `pcap-file` crate), frame by frame.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use pcap_file::TsResolution;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use skiff_event::Timestamp;

use crate::decode::LinkType;
use crate::error::PacketError;

/// One captured frame.
pub struct Frame {
    /// Capture time.
    pub ts: Timestamp,
    /// The link type of its interface.
    pub link: LinkType,
    /// The bytes.
    pub data: Vec<u8>,
}

enum Reader {
    Pcap(PcapReader<BufReader<File>>, LinkType),
    PcapNg(PcapNgReader<BufReader<File>>),
}

/// A capture file, read from the start.
pub struct FileSource {
    path: PathBuf,
    reader: Reader,
}

fn ts(d: std::time::Duration) -> Timestamp {
    Timestamp(d.as_nanos().min(i64::MAX as u128) as i64)
}

fn format_err(path: &Path, e: impl std::fmt::Display) -> PacketError {
    PacketError::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl FileSource {
    /// Opens `path`: pcap (either byte order, micro- or nanosecond) or pcapng.
    pub fn open(path: &Path) -> Result<FileSource, PacketError> {
        let io = |source| PacketError::File {
            path: path.to_owned(),
            source,
        };
        let mut magic = [0u8; 4];
        File::open(path)
            .map_err(io)?
            .read_exact(&mut magic)
            .map_err(io)?;
        let file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        let reader = if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            Reader::PcapNg(PcapNgReader::new(file).map_err(|e| format_err(path, e))?)
        } else {
            let r = PcapReader::new(file).map_err(|e| format_err(path, e))?;
            let dlt: u32 = r.header().datalink.into();
            let link = LinkType::from_dlt(dlt).ok_or(PacketError::LinkType(dlt))?;
            Reader::Pcap(r, link)
        };
        Ok(FileSource {
            path: path.to_owned(),
            reader,
        })
    }

    /// The next frame; None at the end. A damaged file ends with an error.
    pub fn next_frame(&mut self) -> Option<Result<Frame, PacketError>> {
        match &mut self.reader {
            Reader::Pcap(r, link) => {
                // Raw records: some capture tools write an original length above the snap
                // length, which the checked reader refuses; the captured bytes are what count.
                let nanos = matches!(r.header().ts_resolution, TsResolution::NanoSecond);
                let link = *link;
                let p = match r.next_raw_packet()? {
                    Ok(p) => p,
                    Err(e) => return Some(Err(format_err(&self.path, e))),
                };
                let frac = if nanos {
                    i64::from(p.ts_frac)
                } else {
                    i64::from(p.ts_frac) * 1000
                };
                Some(Ok(Frame {
                    ts: Timestamp(i64::from(p.ts_sec) * 1_000_000_000 + frac),
                    link,
                    data: p.data.into_owned(),
                }))
            }
            Reader::PcapNg(r) => loop {
                let block = match r.next_block()? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(format_err(&self.path, e))),
                };
                let (iface, t, data) = match block {
                    Block::EnhancedPacket(p) => {
                        (p.interface_id as usize, p.timestamp, p.data.into_owned())
                    }
                    Block::SimplePacket(p) => (0, std::time::Duration::ZERO, p.data.into_owned()),
                    Block::Packet(p) => (
                        p.interface_id as usize,
                        std::time::Duration::from_micros(p.timestamp),
                        p.data.into_owned(),
                    ),
                    _ => continue,
                };
                let Some(desc) = r.interfaces().get(iface) else {
                    continue;
                };
                let dlt: u32 = desc.linktype.into();
                let Some(link) = LinkType::from_dlt(dlt) else {
                    return Some(Err(PacketError::LinkType(dlt)));
                };
                return Some(Ok(Frame {
                    ts: ts(t),
                    link,
                    data,
                }));
            },
        }
    }
}
