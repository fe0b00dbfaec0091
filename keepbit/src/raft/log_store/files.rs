//! The log's files: segment naming and listing, the record format, the meta file and segment scans.

use super::*;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) format_version: u32,
    pub(super) vote: Option<Vote>,
    pub(super) committed: Option<LogId>,
    pub(super) last_purged: Option<LogId>,
}

/// A segment as the writer knows it: record `i` holds index `first_index + i`.
pub(super) struct Segment {
    pub(super) first_index: u64,
    pub(super) record_offsets: Vec<u64>,
    pub(super) end_offset: u64,
}

impl Segment {
    pub(super) fn next_index(&self) -> u64 {
        self.first_index + self.record_offsets.len() as u64
    }
}

pub(super) fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:0width$}{SEGMENT_SUFFIX}", width = SEGMENT_NAME_DIGITS))
}

/// First indexes of the segment files in `dir`, ascending; other files are ignored.
pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for dir_entry in fs::read_dir(dir)? {
        let name = dir_entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else { continue };
        if stem.len() != SEGMENT_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(first) = stem.parse() {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

pub(super) fn push_record(buf: &mut Vec<u8>, payload: &[u8]) {
    // Callers bound payloads by RECORD_PAYLOAD_BYTES_MAX, which fits in a u32.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(super) fn read_meta(dir: &Path) -> io::Result<Meta> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Meta::default()),
        Err(e) => return Err(e),
    };
    let corrupt = |reason: String| io::Error::from(LogError::CorruptMeta { path: path.clone(), reason });
    let Some((header, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(corrupt("shorter than a record header".into()));
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload = rest.get(..len).ok_or_else(|| corrupt("truncated record".into()))?;
    if crc32c::crc32c(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let meta: Meta = postcard::from_bytes(payload).map_err(|e| corrupt(e.to_string()))?;
    if meta.format_version != META_FORMAT_VERSION {
        return Err(corrupt(format!("unsupported format version {}", meta.format_version)));
    }
    Ok(meta)
}

/// One segment read at open. `torn` = its data ended in a torn write that recovery cuts.
pub(super) struct Scan {
    pub(super) entries: Vec<Entry>,
    pub(super) record_offsets: Vec<u64>,
    pub(super) end_offset: u64,
    pub(super) torn: bool,
}

/// What the bytes at one offset of a segment hold.
enum Record<'a> {
    /// The data ends: a zero length, or fewer than a header's bytes, all zero.
    End,
    Intact(&'a [u8]),
    /// Not a whole record; `next` = where the following record starts if the length is right.
    Bad {
        reason: &'static str,
        next: Option<u64>,
    },
}

fn record_at(bytes: &[u8], offset: u64) -> Record<'_> {
    let rest = usize::try_from(offset).ok().and_then(|o| bytes.get(o..)).unwrap_or_default();
    let Some((header, rest)) = rest.split_first_chunk::<8>() else {
        return match rest.iter().all(|&b| b == 0) {
            true => Record::End,
            false => Record::Bad { reason: "a partial record header", next: None },
        };
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Record::End;
    }
    let Some(payload) = rest.get(..len as usize) else {
        return Record::Bad { reason: "a record running past the end of the file", next: None };
    };
    if crc32c::crc32c(payload) != crc {
        let next = Some(offset + RECORD_HEADER_BYTES + u64::from(len));
        return Record::Bad { reason: "a checksum mismatch", next };
    }
    Record::Intact(payload)
}

/// The first intact record reached by following record lengths from `offset`, if any.
fn intact_record_from(bytes: &[u8], mut offset: u64) -> Option<u64> {
    loop {
        match record_at(bytes, offset) {
            Record::Intact(_) => return Some(offset),
            Record::Bad { next: Some(next), .. } => offset = next,
            Record::End | Record::Bad { next: None, .. } => return None,
        }
    }
}

/// Reads the segment at `path`; `last` = no segment follows it.
///
/// The torn-tail rule. The writer fsyncs a segment before starting the next one, so only
/// the last segment can hold a write that a crash interrupted, and such a write is never
/// followed by data that was acknowledged. The scan stops at the first record that is not
/// whole: a partial header, a payload running past the end of the file, or a checksum
/// mismatch. That record and everything after it are a torn tail, cut by recovery, only if
/// the segment is the last one and no intact record follows it (following the damaged
/// records' lengths until a zero length or the end of the file). Anything else is
/// corruption of data that may have been acknowledged, and the log refuses to open
/// ([`LogError::Corrupt`]) rather than silently drop it. Zeros after the data
/// (preallocation, a cut tail) end it normally.
///
/// Limits: a length field damaged so that it points past the end of the file is taken
/// for a torn write, and one damaged to a smaller length may hide the intact records
/// behind it; the checksum covers the payload, not the header.
pub(super) fn scan_segment(path: &Path, first_index: u64, last: bool) -> io::Result<Scan> {
    let bytes = fs::read(path)?;
    let mut scan = Scan { entries: Vec::new(), record_offsets: Vec::new(), end_offset: 0, torn: false };
    loop {
        let offset = scan.end_offset;
        let payload = match record_at(&bytes, offset) {
            Record::End => return Ok(scan),
            Record::Intact(payload) => payload,
            Record::Bad { reason, next } => {
                let intact_after = next.and_then(|n| intact_record_from(&bytes, n));
                let reason = match (last, intact_after) {
                    (true, None) => {
                        scan.torn = true;
                        return Ok(scan);
                    }
                    (false, _) => format!("{reason} in a segment that later segments follow"),
                    (true, Some(n)) => format!("{reason}, followed by an intact record at byte {n}"),
                };
                return Err(LogError::Corrupt { path: path.to_path_buf(), offset, reason }.into());
            }
        };
        let entry: Entry = postcard::from_bytes(payload).map_err(|e| LogError::Undecodable {
            path: path.to_path_buf(),
            offset,
            reason: e.to_string(),
        })?;
        let expected = first_index + scan.record_offsets.len() as u64;
        if entry.log_id.index != expected {
            let found = entry.log_id.index;
            return Err(LogError::OutOfOrder { path: path.to_path_buf(), offset, expected, found }.into());
        }
        scan.record_offsets.push(offset);
        scan.entries.push(entry);
        scan.end_offset = offset + RECORD_HEADER_BYTES + payload.len() as u64;
    }
}
