//! Chunk codecs. Codec ids are on disk (docs/format.md, "Codecs"): 0 = stored raw,
//! 1 = LZ4 block with a 4-byte size prefix, 2 = one zstd frame (RFC 8878) holding exactly
//! the chunk. Every buffer belongs to the caller (the pipelines' shared-memory slots):
//! `compress_into`, `decode_into` and `verify_many` allocate nothing for the data.

/// Codec id of a chunk stored raw. ON DISK: DO NOT CHANGE.
pub const CODEC_NONE: u8 = 0;
/// Codec id of a zstd-compressed chunk. ON DISK: DO NOT CHANGE.
pub const CODEC_ZSTD: u8 = 2;

/// Reference forms for the tests: each chunk compressed alone, laid back to back.
#[cfg(test)]
pub struct Compressed {
    pub stored_lengths: Vec<u32>,
    pub codecs: Vec<u8>,
    pub data: Vec<u8>,
}

/// Test reference: zstd of each piece of `data` (piece i is `lengths[i]` bytes) at
/// `level`, with an unbounded output; a chunk that does not shrink is kept raw (codec 0).
#[cfg(test)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_round_trip_and_raw_fallback() {
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
        let mut out = vec![0u8; 100_000];
        assert_eq!(zstd_decompress_into(first, &mut out).unwrap(), 100_000);
        assert_eq!(out, text);
        // A frame holding more than the buffer is an error, not a truncation.
        assert!(zstd_decompress_into(first, &mut out[..99_999]).is_err());
        let mut bad = first.to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(zstd_decompress_into(&bad, &mut out).map(|_| out != text).unwrap_or(true));
    }
}

// ---- LZ4 (codec 1), through Debian's liblz4 ----
//
// Stored form (docs/format.md, "Codecs"): the raw length as 4 bytes little-endian, then one
// LZ4 block. (The same bytes lz4-napi's compress produces, which the JS fallback uses.)

/// Codec id of an LZ4 chunk. ON DISK: DO NOT CHANGE.
pub const CODEC_LZ4: u8 = 1;

mod ffi {
    use std::os::raw::{c_char, c_int};
    #[link(name = "lz4")]
    extern "C" {
        #[cfg(test)]
        pub fn LZ4_compressBound(input_size: c_int) -> c_int;
        pub fn LZ4_compress_default(src: *const c_char, dst: *mut c_char, src_size: c_int, dst_capacity: c_int) -> c_int;
        pub fn LZ4_decompress_safe(src: *const c_char, dst: *mut c_char, compressed_size: c_int, dst_capacity: c_int) -> c_int;
    }
}

/// Test reference: LZ4 of each piece of `data`, each alone, with an unbounded output; a
/// chunk that does not shrink is kept raw.
#[cfg(test)]
pub fn lz4_compress_many(data: &[u8], lengths: &[u32]) -> Compressed {
    let mut out = Compressed { stored_lengths: Vec::with_capacity(lengths.len()), codecs: Vec::with_capacity(lengths.len()), data: Vec::with_capacity(data.len() / 2 + 64) };
    let mut scratch: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    for &len in lengths {
        let raw = &data[pos..pos + len as usize];
        pos += len as usize;
        // SAFETY: plain C calls on buffers of the stated sizes; LZ4 never writes past dst_capacity.
        let bound = unsafe { ffi::LZ4_compressBound(raw.len() as i32) } as usize;
        scratch.resize(4 + bound, 0);
        scratch[..4].copy_from_slice(&len.to_le_bytes());
        let n = unsafe { ffi::LZ4_compress_default(raw.as_ptr() as *const _, scratch[4..].as_mut_ptr() as *mut _, raw.len() as i32, bound as i32) };
        if n > 0 && 4 + (n as usize) < raw.len() {
            out.data.extend_from_slice(&scratch[..4 + n as usize]);
            out.stored_lengths.push(4 + n as u32);
            out.codecs.push(CODEC_LZ4);
        } else {
            out.data.extend_from_slice(raw);
            out.stored_lengths.push(len);
            out.codecs.push(CODEC_NONE);
        }
    }
    out
}

/// Decodes one LZ4 chunk (size prefix + block) into `dst`, which must be exactly the raw length.
pub fn lz4_decompress_into(stored: &[u8], dst: &mut [u8]) -> Result<(), String> {
    if stored.len() < 4 {
        return Err("lz4 chunk shorter than its size prefix".into());
    }
    let prefix = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]) as usize;
    if prefix != dst.len() {
        return Err(format!("lz4 size prefix says {prefix} bytes, expected {}", dst.len()));
    }
    // SAFETY: LZ4_decompress_safe never reads or writes out of the given bounds.
    let n = unsafe { ffi::LZ4_decompress_safe(stored[4..].as_ptr() as *const _, dst.as_mut_ptr() as *mut _, (stored.len() - 4) as i32, dst.len() as i32) };
    if n < 0 {
        return Err(format!("lz4 data does not decode (error {n})"));
    }
    if n as usize != dst.len() {
        return Err(format!("decoded to {n} bytes, expected {}", dst.len()));
    }
    Ok(())
}

/// One piece of a decode: where its stored bytes are in the read, and what it must become.
pub struct Piece {
    pub offset: usize,
    pub stored_length: usize,
    pub raw_length: usize,
    pub codec: u8,
}

/// The stored bytes of piece `i`, which must lie inside the read.
pub(crate) fn stored_of<'a>(i: usize, data: &'a [u8], p: &Piece) -> Result<&'a [u8], (usize, String)> {
    match p.offset.checked_add(p.stored_length) {
        Some(end) if end <= data.len() => Ok(&data[p.offset..end]),
        _ => Err((i, "stored bytes run past the end of the read".into())),
    }
}

/// A raw piece (codec 0) is its stored bytes, which must have the raw length.
pub(crate) fn raw_of<'a>(i: usize, p: &Piece, stored: &'a [u8]) -> Result<&'a [u8], (usize, String)> {
    if p.stored_length != p.raw_length {
        return Err((i, format!("raw chunk has {} bytes, expected {}", p.stored_length, p.raw_length)));
    }
    Ok(stored)
}

/// Decodes a compressed piece (codec 1 or 2) into `dst`, exactly its raw length.
pub(crate) fn decompress_into(i: usize, p: &Piece, stored: &[u8], dst: &mut [u8]) -> Result<(), (usize, String)> {
    match p.codec {
        CODEC_LZ4 => lz4_decompress_into(stored, dst).map_err(|m| (i, m)),
        CODEC_ZSTD => match zstd_decompress_into(stored, dst).map_err(|m| (i, m))? {
            n if n == p.raw_length => Ok(()),
            n => Err((i, format!("decoded to {n} bytes, expected {}", p.raw_length))),
        },
        c => Err((i, format!("unknown codec {c}"))),
    }
}

/// The decoded bytes of piece `i` must hash to its fingerprint.
pub(crate) fn check_fingerprint(i: usize, key: Option<&[u8; 32]>, raw: &[u8], fingerprints: &[u8]) -> Result<(), (usize, String)> {
    if crate::chunker::fingerprint(key, raw).as_bytes()[..] != fingerprints[i * 32..i * 32 + 32] {
        return Err((i, "fingerprint mismatch: the chunk bytes are not what was stored".into()));
    }
    Ok(())
}

// ---- In-place forms: the caller owns every buffer (pooled, shared with other threads) ----

thread_local! {
    /// One zstd context per thread and level: creating one costs more than compressing a
    /// small chunk, and a compression worker compresses thousands of batches.
    static ZSTD_CONTEXT: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = std::cell::RefCell::new(None);
}

/// Compresses one chunk `raw` with `codec` (CODEC_LZ4, CODEC_ZSTD at `level`) into the start
/// of `dst`; returns the stored length, or 0 when the stored form would not be smaller than
/// the chunk (or does not fit in `dst`): the chunk is then stored raw.
pub fn compress_one(codec: u8, raw: &[u8], dst: &mut [u8], level: i32) -> Result<usize, String> {
    let len = raw.len();
    let room = dst.len();
    let mut written = 0usize;
    match codec {
        CODEC_LZ4 if len > 5 && room > 5 => {
            // Stored form: 4-byte raw length + block; kept only if smaller than the chunk.
            let cap = (len - 5).min(room - 4);
            dst[..4].copy_from_slice(&(len as u32).to_le_bytes());
            // SAFETY: plain C call; LZ4 writes at most `cap` bytes at dst and returns 0 if
            // the block does not fit in them.
            let n = unsafe { ffi::LZ4_compress_default(raw.as_ptr() as *const _, dst[4..].as_mut_ptr() as *mut _, len as i32, cap as i32) };
            if n > 0 {
                written = 4 + n as usize;
            }
        }
        CODEC_ZSTD if len > 1 && room > 1 => {
            let cap = (len - 1).min(room);
            written = ZSTD_CONTEXT.with(|cell| -> Result<usize, String> {
                let mut slot = cell.borrow_mut();
                if slot.as_ref().map_or(true, |(l, _)| *l != level) {
                    let c = zstd::bulk::Compressor::new(level).map_err(|e| format!("zstd level {level}: {e}"))?;
                    *slot = Some((level, c));
                }
                let (_, c) = slot.as_mut().expect("set above");
                // An error here is "does not fit in cap" (the chunk does not shrink).
                Ok(c.compress_to_buffer(raw, &mut dst[..cap]).unwrap_or(0))
            })?;
        }
        CODEC_LZ4 | CODEC_ZSTD | CODEC_NONE => {}
        c => return Err(format!("codec {c} cannot compress")),
    }
    Ok(written)
}

/// Compresses the pieces `(offset, length)` of `data`, each alone, with `codec`
/// (CODEC_LZ4 or CODEC_ZSTD at `level`), writing the stored forms that are smaller than their
/// chunk back to back into `out`. A chunk that would not shrink is not written: its codec is
/// CODEC_NONE and its stored form is its raw bytes, which the caller still has. Returns the
/// stored length and codec of every piece.
///
/// `out` needs at most the sum of the piece lengths (a stored form is written only when it is
/// smaller than its chunk); when it runs out, the remaining pieces are kept raw.
/// The bytes are those of an unbounded compression (the test references lz4_compress_many and
/// zstd_compress_many): a limit on the output only
/// makes the compressor give up earlier, it does not change what it writes.
pub fn compress_into(codec: u8, data: &[u8], pieces: &[(usize, usize)], out: &mut [u8], level: i32) -> Result<(Vec<u32>, Vec<u8>), String> {
    if codec != CODEC_LZ4 && codec != CODEC_ZSTD {
        return Err(format!("codec {codec} cannot compress"));
    }
    let mut stored_lengths = Vec::with_capacity(pieces.len());
    let mut codecs = Vec::with_capacity(pieces.len());
    let mut pos = 0usize;
    for (i, &(off, len)) in pieces.iter().enumerate() {
        let raw = data.get(off..off.checked_add(len).ok_or("piece offset overflows")?).ok_or_else(|| format!("piece {i} ({off}+{len}) runs past data ({})", data.len()))?;
        let written = compress_one(codec, raw, &mut out[pos..], level)?;
        if written > 0 {
            stored_lengths.push(written as u32);
            codecs.push(codec);
            pos += written;
        } else {
            stored_lengths.push(len as u32);
            codecs.push(CODEC_NONE);
        }
    }
    Ok((stored_lengths, codecs))
}

/// Decodes and verifies the chunks of one read into `out`, which must be exactly the sum of
/// the raw lengths: every chunk decoded by its codec and checked against its fingerprint.
/// Err((index, reason)) names the first chunk that fails.
pub fn decode_into(data: &[u8], pieces: &[Piece], fingerprints: &[u8], key: Option<&[u8; 32]>, out: &mut [u8]) -> Result<(), (usize, String)> {
    let total: usize = pieces.iter().map(|p| p.raw_length).sum();
    if total != out.len() {
        return Err((0, format!("output buffer has {} bytes, the pieces decode to {total}", out.len())));
    }
    let mut o = 0usize;
    for (i, p) in pieces.iter().enumerate() {
        let stored = stored_of(i, data, p)?;
        let dst = &mut out[o..o + p.raw_length];
        if p.codec == CODEC_NONE {
            dst.copy_from_slice(raw_of(i, p, stored)?);
        } else {
            decompress_into(i, p, stored, dst)?;
        }
        check_fingerprint(i, key, dst, fingerprints)?;
        o += p.raw_length;
    }
    Ok(())
}

/// decode_into with a place of its own for each piece: piece i decodes to
/// `out[dests[i] .. dests[i] + raw_length]`, so one read of a pack fills places that are
/// scattered through a restore's assembly area (its chunks are needed by the stream out of
/// pack order). Err((index, reason)) names the first piece that fails.
///
/// SAFETY: `out` must be valid for writes of `out_len` bytes, and no one else may read or
/// write the pieces' places until this returns. Other places of the same buffer may be
/// written meanwhile by other threads (other reads into the same area): only the pieces'
/// own places are ever turned into slices here, never the whole buffer.
pub unsafe fn decode_scatter(data: &[u8], pieces: &[Piece], dests: &[usize], fingerprints: &[u8], key: Option<&[u8; 32]>, out: *mut u8, out_len: usize) -> Result<(), (usize, String)> {
    scatter_with(pieces, dests, out, out_len, None, |i, p, dst| decode_checked(i, p, data, fingerprints, key, dst))
}

/// Piece `i` of `data` decoded into `dst` (exactly its raw length) and checked against its fingerprint.
fn decode_checked(i: usize, p: &Piece, data: &[u8], fingerprints: &[u8], key: Option<&[u8; 32]>, dst: &mut [u8]) -> Result<(), (usize, String)> {
    let stored = stored_of(i, data, p)?;
    if p.codec == CODEC_NONE {
        dst.copy_from_slice(raw_of(i, p, stored)?);
    } else {
        decompress_into(i, p, stored, dst)?;
    }
    check_fingerprint(i, key, dst, fingerprints)
}

/// decode_scatter that writes the pieces marked `direct` straight to a file instead of their
/// places: each is decoded into a per-thread scratch buffer (still in the CPU's cache),
/// checked against its fingerprint, and only then written (FileOut::put). The other pieces
/// go to their places in `out` as in decode_scatter. A failed write is
/// Err((OUTPUT_FAILED, reason)).
///
/// SAFETY: as decode_scatter; `output.fd` must stay open until this returns.
pub unsafe fn decode_scatter_out(data: &[u8], pieces: &[Piece], dests: &[usize], fingerprints: &[u8], key: Option<&[u8; 32]>, out: *mut u8, out_len: usize, output: &FileOut, direct: &[u8]) -> Result<(), (usize, String)> {
    scatter_with(pieces, dests, out, out_len, Some((output, direct)), |i, p, dst| decode_checked(i, p, data, fingerprints, key, dst))
}

/// The index of a scatter's error that is the output's (a write failed), not a chunk's.
pub const OUTPUT_FAILED: usize = usize::MAX;

/// Where a scatter writes its direct pieces: a file open for writing. The place `dest` of
/// the call's output is file offset `base + dest`; only the part of a place inside [lo, hi)
/// is written (a range restore's first and last chunks). `zeros`: how a piece that is all
/// zeros (4 KiB or more) is put down — 0 written, 1 allocated with fallocate(2) (written if
/// that fails), 2 skipped (a hole; the caller sets the file's size at the end).
pub struct FileOut {
    pub fd: i32,
    pub base: i64,
    pub lo: usize,
    pub hi: usize,
    pub zeros: u8,
}

impl FileOut {
    /// Writes `bytes`, the verified content of place [dest, dest + len), clipped to [lo, hi).
    pub fn put(&self, dest: usize, bytes: &[u8]) -> Result<(), String> {
        let from = dest.max(self.lo);
        let to = (dest + bytes.len()).min(self.hi);
        if to <= from {
            return Ok(());
        }
        let part = &bytes[from - dest..to - dest];
        let at = self.base + from as i64;
        if at < 0 {
            return Err(format!("file offset {at} is negative"));
        }
        if self.zeros != 0 && part.len() >= 4096 && is_zero(part) {
            if self.zeros == 2 {
                return Ok(());
            }
            if fallocate_range(self.fd, at, part.len() as i64) {
                return Ok(());
            }
        }
        use std::os::unix::fs::FileExt;
        use std::os::unix::io::FromRawFd;
        // SAFETY: the caller keeps fd open until the scatter returns; ManuallyDrop never closes it.
        let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(self.fd) });
        file.write_all_at(part, at as u64).map_err(|e| format!("write of {} bytes at {at}: {e}", part.len()))
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    // SAFETY: any bytes are a valid u64; align_to splits off the unaligned ends.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

#[cfg(target_os = "linux")]
fn fallocate_range(fd: i32, offset: i64, length: i64) -> bool {
    extern "C" {
        fn fallocate(fd: std::ffi::c_int, mode: std::ffi::c_int, offset: i64, len: i64) -> std::ffi::c_int;
    }
    // SAFETY: a plain system call on a descriptor; it touches no memory of ours.
    unsafe { fallocate(fd, 0, offset, length) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn fallocate_range(_fd: i32, _offset: i64, _length: i64) -> bool {
    false
}

thread_local! {
    /// Where a scatter decodes its direct pieces: grown as needed, kept per thread.
    static SCATTER_SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::new());
}

/// The loop of the scatters: each piece's place checked, then `decode(i, piece, dst)` fills
/// dst — its place in `out`, or for a direct piece the thread's scratch buffer, which is
/// then written to the file (only after `decode`, which checks the fingerprint, succeeded).
///
/// SAFETY: as decode_scatter.
pub(crate) unsafe fn scatter_with(
    pieces: &[Piece],
    dests: &[usize],
    out: *mut u8,
    out_len: usize,
    output: Option<(&FileOut, &[u8])>,
    mut decode: impl FnMut(usize, &Piece, &mut [u8]) -> Result<(), (usize, String)>,
) -> Result<(), (usize, String)> {
    SCATTER_SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        for (i, p) in pieces.iter().enumerate() {
            let dest = dests[i];
            match dest.checked_add(p.raw_length) {
                Some(end) if end <= out_len => {}
                _ => return Err((i, format!("place {dest}+{} runs past the output ({out_len} bytes)", p.raw_length))),
            }
            match output {
                Some((file, direct)) if direct.get(i).copied().unwrap_or(0) != 0 => {
                    if scratch.len() < p.raw_length {
                        scratch.resize(p.raw_length, 0);
                    }
                    let dst = &mut scratch[..p.raw_length];
                    decode(i, p, dst)?;
                    file.put(dest, dst).map_err(|m| (OUTPUT_FAILED, m))?;
                }
                _ => {
                    let dst: &mut [u8] = if p.raw_length == 0 { &mut [] } else { std::slice::from_raw_parts_mut(out.add(dest), p.raw_length) };
                    decode(i, p, dst)?;
                }
            }
        }
        Ok(())
    })
}

thread_local! {
    /// Where verify_many decodes compressed chunks: grown as needed, kept per thread.
    static VERIFY_SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::new());
}

/// decode_into without an output: a raw chunk is hashed where it lies, a compressed one is
/// decoded into a per-thread scratch buffer and hashed there. For reads that only need the
/// verdict (check --read-data, and prune and repair, which copy the stored bytes as read).
pub fn verify_many(data: &[u8], pieces: &[Piece], fingerprints: &[u8], key: Option<&[u8; 32]>) -> Result<(), (usize, String)> {
    VERIFY_SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        for (i, p) in pieces.iter().enumerate() {
            let stored = stored_of(i, data, p)?;
            let raw: &[u8] = if p.codec == CODEC_NONE {
                raw_of(i, p, stored)?
            } else {
                if scratch.len() < p.raw_length {
                    scratch.resize(p.raw_length, 0);
                }
                decompress_into(i, p, stored, &mut scratch[..p.raw_length])?;
                &scratch[..p.raw_length]
            };
            check_fingerprint(i, key, raw, fingerprints)?;
        }
        Ok(())
    })
}

/// One zstd frame into `dst`; a frame that declares or holds more than dst.len() bytes is an error.
fn zstd_decompress_into(stored: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    thread_local! {
        static D: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = std::cell::RefCell::new(None);
    }
    D.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?);
        }
        slot.as_mut().expect("set above").decompress_to_buffer(stored, dst).map_err(|e| format!("zstd data does not decode ({e})"))
    })
}

#[cfg(test)]
mod into_tests {
    use super::*;

    fn sample() -> (Vec<u8>, Vec<(usize, usize)>) {
        let text: Vec<u8> = b"pooled buffers ".iter().cycle().take(90_000).copied().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let tiny = b"abc".to_vec();
        let data = [vec![7u8; 100], text, noise, tiny].concat();
        (data, vec![(100, 90_000), (90_100, 40_000), (130_100, 3)])
    }

    #[test]
    fn compress_into_matches_the_allocating_forms() {
        let (data, pieces) = sample();
        let lengths: Vec<u32> = pieces.iter().map(|p| p.1 as u32).collect();
        for (codec, reference) in [(CODEC_LZ4, lz4_compress_many(&data[100..], &lengths)), (CODEC_ZSTD, zstd_compress_many(&data[100..], &lengths, 3).unwrap())] {
            let mut out = vec![0u8; 130_003];
            let (lens, codecs) = compress_into(codec, &data, &pieces, &mut out, 3).unwrap();
            assert_eq!(lens, reference.stored_lengths);
            assert_eq!(codecs, reference.codecs);
            assert_eq!(codecs, vec![codec, CODEC_NONE, CODEC_NONE]);
            // The compressed forms are identical; raw ones are not copied into out.
            let n0 = lens[0] as usize;
            assert_eq!(&out[..n0], &reference.data[..n0]);
        }
    }

    #[test]
    fn compress_into_keeps_raw_when_out_is_full() {
        let (data, pieces) = sample();
        let mut out = vec![0u8; 10];
        let (lens, codecs) = compress_into(CODEC_LZ4, &data, &pieces, &mut out, 3).unwrap();
        assert_eq!(codecs, vec![CODEC_NONE, CODEC_NONE, CODEC_NONE]);
        assert_eq!(lens, vec![90_000, 40_000, 3]);
        assert!(compress_into(CODEC_LZ4, &data, &[(130_000, 200)], &mut out, 3).is_err());
        assert!(compress_into(CODEC_NONE, &data, &pieces, &mut out, 3).is_err());
    }

    #[test]
    fn decode_scatter_places_each_piece() {
        let a = vec![7u8; 1000];
        let b: Vec<u8> = (0..500u32).map(|i| (i % 251) as u8).collect();
        let mut data = a.clone();
        data.extend_from_slice(&b);
        let pieces = [Piece { offset: 0, stored_length: 1000, raw_length: 1000, codec: CODEC_NONE }, Piece { offset: 1000, stored_length: 500, raw_length: 500, codec: CODEC_NONE }];
        let mut fps = crate::chunker::fingerprint(None, &a).as_bytes().to_vec();
        fps.extend_from_slice(crate::chunker::fingerprint(None, &b).as_bytes());
        // b first, then a gap of 100 bytes left alone, then a.
        let mut out = vec![0xeeu8; 1600];
        unsafe { decode_scatter(&data, &pieces, &[600, 0], &fps, None, out.as_mut_ptr(), out.len()) }.unwrap();
        assert_eq!(&out[..500], &b[..]);
        assert!(out[500..600].iter().all(|&x| x == 0xee));
        assert_eq!(&out[600..], &a[..]);
        // A place past the end, and a wrong fingerprint, are errors naming the piece.
        assert_eq!(unsafe { decode_scatter(&data, &pieces, &[0, 1200], &fps, None, out.as_mut_ptr(), out.len()) }.unwrap_err().0, 1);
        let mut bad = fps.clone();
        bad[0] ^= 1;
        assert_eq!(unsafe { decode_scatter(&data, &pieces, &[600, 0], &bad, None, out.as_mut_ptr(), out.len()) }.unwrap_err().0, 0);
    }

    #[test]
    fn decode_scatter_out_writes_direct_pieces_only_after_they_verify() {
        use std::os::unix::io::AsRawFd;
        let a: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let b = vec![0u8; 8192];
        let c: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8 + 1).collect();
        let data = [a.clone(), b.clone(), c.clone()].concat();
        let pieces = [
            Piece { offset: 0, stored_length: 5000, raw_length: 5000, codec: CODEC_NONE },
            Piece { offset: 5000, stored_length: 8192, raw_length: 8192, codec: CODEC_NONE },
            Piece { offset: 13192, stored_length: 3000, raw_length: 3000, codec: CODEC_NONE },
        ];
        let mut fps = Vec::new();
        for x in [&a, &b, &c] {
            fps.extend_from_slice(crate::chunker::fingerprint(None, x).as_bytes());
        }
        let path = std::env::temp_dir().join(format!("chunkyard-scatter-out-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        // Places: a at 0, b at 5000, c at 13192 of a window; the file gets the window from
        // place 100 on (lo), written at offset base + place = place − 100 + 7.
        let out_len = 16192;
        let mut out = vec![0xeeu8; out_len];
        let dests = [0usize, 5000, 13192];
        let fo = FileOut { fd: file.as_raw_fd(), base: -93, lo: 100, hi: out_len, zeros: 0 };
        // a and c direct, b into out.
        unsafe { decode_scatter_out(&data, &pieces, &dests, &fps, None, out.as_mut_ptr(), out_len, &fo, &[1, 0, 1]) }.unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written.len(), 13192 - 93 + 3000);
        assert_eq!(&written[7..7 + 4900], &a[100..]);
        assert!(written[4907..13099].iter().all(|&x| x == 0), "b is not written to the file");
        assert_eq!(&written[13099..], &c[..]);
        assert_eq!(&out[5000..13192], &b[..]);
        assert!(out[..5000].iter().all(|&x| x == 0xee), "direct pieces are not put in out");
        // Zeros skipped (mode 2): b direct writes nothing.
        file.set_len(0).unwrap();
        let fo2 = FileOut { zeros: 2, lo: 0, base: 0, ..fo };
        unsafe { decode_scatter_out(&data, &pieces[1..2], &[0], &fps[32..64], None, out.as_mut_ptr(), out_len, &fo2, &[1]) }.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        // A chunk that fails its fingerprint is not written.
        let mut bad = fps.clone();
        bad[64] ^= 1;
        let fo3 = FileOut { zeros: 0, lo: 0, base: 0, ..fo };
        let err = unsafe { decode_scatter_out(&data, &pieces, &dests, &bad, None, out.as_mut_ptr(), out_len, &fo3, &[1, 1, 1]) }.unwrap_err();
        assert_eq!(err.0, 2);
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written.len(), 13192, "a and b written, c not");
        // A write that fails (a descriptor open for reading only) is OUTPUT_FAILED.
        let ro = std::fs::File::open(&path).unwrap();
        let fo4 = FileOut { fd: ro.as_raw_fd(), zeros: 0, lo: 0, base: 0, hi: out_len };
        let err = unsafe { decode_scatter_out(&data, &pieces, &dests, &fps, None, out.as_mut_ptr(), out_len, &fo4, &[1, 0, 0]) }.unwrap_err();
        assert_eq!(err.0, OUTPUT_FAILED);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn decode_into_round_trip_and_errors() {
        let (data, pieces) = sample();
        for codec in [CODEC_LZ4, CODEC_ZSTD] {
            let mut out = vec![0u8; 130_003];
            let (lens, codecs) = compress_into(codec, &data, &pieces, &mut out, 3).unwrap();
            // Lay the stored forms out as a pack would: compressed from out, raw from data.
            let mut stored = Vec::new();
            let mut dec = Vec::new();
            let mut fps = Vec::new();
            let mut o = 0usize;
            for (i, &(off, len)) in pieces.iter().enumerate() {
                let at = stored.len();
                if codecs[i] == CODEC_NONE {
                    stored.extend_from_slice(&data[off..off + len]);
                } else {
                    stored.extend_from_slice(&out[o..o + lens[i] as usize]);
                    o += lens[i] as usize;
                }
                dec.push(Piece { offset: at, stored_length: lens[i] as usize, raw_length: len, codec: codecs[i] });
                fps.extend_from_slice(blake3::hash(&data[off..off + len]).as_bytes());
            }
            let mut raw = vec![0u8; 130_003];
            decode_into(&stored, &dec, &fps, None, &mut raw).unwrap();
            assert_eq!(&raw[..], &data[100..]);
            let mut short = vec![0u8; 130_002];
            assert!(decode_into(&stored, &dec, &fps, None, &mut short).is_err());
            let mut bad = stored.clone();
            bad[20] ^= 0x40;
            assert_eq!(decode_into(&bad, &dec, &fps, None, &mut raw).unwrap_err().0, 0);
            // verify_many agrees with decode_into, for good and bad bytes alike.
            assert!(verify_many(&stored, &dec, &fps, None).is_ok());
            assert_eq!(verify_many(&bad, &dec, &fps, None).unwrap_err().0, 0);
            let mut bad_raw = stored.clone();
            let raw_at = dec[1].offset + 7;
            bad_raw[raw_at] ^= 1;
            assert_eq!(verify_many(&bad_raw, &dec, &fps, None).unwrap_err().0, 1);
        }
    }
}

#[cfg(test)]
mod lz4_tests {
    use super::*;

    #[test]
    fn lz4_round_trip_and_verify() {
        let text: Vec<u8> = b"gear hash ".iter().cycle().take(70_000).copied().collect();
        let noise: Vec<u8> = (0..30_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let data = [text.clone(), noise.clone()].concat();
        let c = lz4_compress_many(&data, &[70_000, 30_000]);
        assert_eq!(c.codecs[0], CODEC_LZ4);
        assert_eq!(&c.data[..4], &70_000u32.to_le_bytes());
        let pieces = vec![
            Piece { offset: 0, stored_length: c.stored_lengths[0] as usize, raw_length: 70_000, codec: c.codecs[0] },
            Piece { offset: c.stored_lengths[0] as usize, stored_length: c.stored_lengths[1] as usize, raw_length: 30_000, codec: c.codecs[1] },
        ];
        let mut fps = Vec::new();
        fps.extend_from_slice(blake3::hash(&text).as_bytes());
        fps.extend_from_slice(blake3::hash(&noise).as_bytes());
        let mut out = vec![0u8; data.len()];
        decode_into(&c.data, &pieces, &fps, None, &mut out).unwrap();
        assert_eq!(out, data);
        let mut bad = c.data.clone();
        bad[10] ^= 0x55;
        assert_eq!(decode_into(&bad, &pieces, &fps, None, &mut out).unwrap_err().0, 0);
        let mut wrong = fps.clone();
        wrong[40] ^= 1;
        assert_eq!(decode_into(&c.data, &pieces, &wrong, None, &mut out).unwrap_err().0, 1);
    }
}
