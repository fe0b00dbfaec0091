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

/// One segment read at open. `torn` = data ended in a record that was never fully written.
pub(super) struct Scan {
    pub(super) entries: Vec<Entry>,
    pub(super) record_offsets: Vec<u64>,
    pub(super) end_offset: u64,
    pub(super) torn: bool,
}

pub(super) fn scan_segment(path: &Path, first_index: u64) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_bytes = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut scan = Scan { entries: Vec::new(), record_offsets: Vec::new(), end_offset: 0, torn: false };
    loop {
        let offset = scan.end_offset;
        let remaining_bytes = file_bytes - offset;
        if remaining_bytes < RECORD_HEADER_BYTES {
            // A segment filled to within a header of its end; only zeros may follow.
            let mut tail = Vec::new();
            reader.read_to_end(&mut tail)?;
            scan.torn = tail.iter().any(|&b| b != 0);
            return Ok(scan);
        }
        let mut header = [0u8; 8];
        reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 {
            return Ok(scan);
        }
        if u64::from(len) > remaining_bytes - RECORD_HEADER_BYTES {
            scan.torn = true;
            return Ok(scan);
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload)?;
        if crc32c::crc32c(&payload) != crc {
            scan.torn = true;
            return Ok(scan);
        }
        let entry: Entry = postcard::from_bytes(&payload).map_err(|e| LogError::Undecodable {
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
        scan.end_offset = offset + RECORD_HEADER_BYTES + u64::from(len);
    }
}
