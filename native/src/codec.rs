//! zstd for chunks: compress a batch of chunks (each alone, so any one can be read back by
//! itself) and decompress one. Codec ids are on disk (docs/format.md, "Codecs"):
//! 0 = stored raw, 2 = one zstd frame (RFC 8878) holding exactly the chunk.

/// Codec id of a chunk stored raw. ON DISK: DO NOT CHANGE.
pub const CODEC_NONE: u8 = 0;
/// Codec id of a zstd-compressed chunk. ON DISK: DO NOT CHANGE.
pub const CODEC_ZSTD: u8 = 2;

/// Chunks compressed one by one, laid back to back in `data`.
pub struct Compressed {
    pub stored_lengths: Vec<u32>,
    pub codecs: Vec<u8>,
    pub data: Vec<u8>,
}

/// Compresses each piece of `data` (piece i is `lengths[i]` bytes) at `level`. A chunk
/// that does not shrink is kept raw (codec 0): decoding it would cost time for nothing.
pub fn zstd_compress_many(data: &[u8], lengths: &[u32], level: i32) -> Result<Compressed, String> {
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(|e| format!("zstd level {level}: {e}"))?;
    let mut out = Compressed { stored_lengths: Vec::with_capacity(lengths.len()), codecs: Vec::with_capacity(lengths.len()), data: Vec::with_capacity(data.len() / 2) };
    let mut scratch = Vec::new();
    let mut pos = 0usize;
    for &len in lengths {
        let raw = &data[pos..pos + len as usize];
        pos += len as usize;
        scratch.clear();
        scratch.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        compressor.compress_to_buffer(raw, &mut scratch).map_err(|e| format!("zstd: {e}"))?;
        if scratch.len() < raw.len() {
            out.data.extend_from_slice(&scratch);
            out.stored_lengths.push(scratch.len() as u32);
            out.codecs.push(CODEC_ZSTD);
        } else {
            out.data.extend_from_slice(raw);
            out.stored_lengths.push(len);
            out.codecs.push(CODEC_NONE);
        }
    }
    Ok(out)
}

/// Decompresses one zstd chunk that must hold exactly `raw_length` bytes.
pub fn zstd_decompress(stored: &[u8], raw_length: usize) -> Result<Vec<u8>, String> {
    // One byte of slack, so a frame holding more than raw_length is reported, not truncated.
    let out = zstd::bulk::decompress(stored, raw_length + 1).map_err(|e| format!("zstd data does not decode ({e})"))?;
    if out.len() != raw_length {
        return Err(format!("decoded to {} bytes, expected {raw_length}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raw_fallback() {
        let text: Vec<u8> = b"chunkyard ".iter().cycle().take(100_000).copied().collect();
        let mut noise = vec![0u8; 50_000];
        let mut x: u32 = 12345;
        for b in noise.iter_mut() {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        let data = [text.clone(), noise.clone()].concat();
        let c = zstd_compress_many(&data, &[100_000, 50_000], 3).unwrap();
        assert_eq!(c.codecs, vec![CODEC_ZSTD, CODEC_NONE]);
        assert!(c.stored_lengths[0] < 1000);
        assert_eq!(c.stored_lengths[1], 50_000);
        let first = &c.data[..c.stored_lengths[0] as usize];
        assert_eq!(zstd_decompress(first, 100_000).unwrap(), text);
        assert!(zstd_decompress(first, 99_999).is_err());
        assert!(zstd_decompress(first, 100_001).is_err());
        let mut bad = first.to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(zstd_decompress(&bad, 100_000).map(|v| v != text).unwrap_or(true));
    }
}
