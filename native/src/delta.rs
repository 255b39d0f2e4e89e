//! Resemblance detection and delta encoding of similar chunks (docs/delta.md).
//!
//! Sketch: per chunk, SUPER_FEATURES super-features in the spirit of Finesse/Odess. Every
//! byte position contributes the hash of the 8 bytes that start there (a shift-invariant
//! "gram", so an insertion moves features with the content instead of changing them);
//! about one position in 32 is sampled by content (Odess's content-defined sampling), and for
//! each of FEATURES linear transforms the maximum over the sampled grams is a feature. Groups
//! of FEATURES_PER_SF features hash to one super-feature. Two chunks that share a
//! super-feature very probably share most of their content; chunks with no sampled gram (or
//! shorter than MIN_SKETCH_BYTES) get all zeros, which means "no sketch".
//!
//! Delta codec (codec 3, docs/format.md "Codecs"): a zstd frame compressed with the base
//! chunk's raw bytes as a raw-content prefix (`ZSTD_CCtx_refPrefix`): the dictionary is always
//! taken as plain content (a base that happens to start with zstd's dictionary magic is not
//! parsed as a trained dictionary), and no dictionary object is built per chunk.
//!
//! Everything here is plain Rust; the N-API glue is napi/delta.rs.

/// Super-features per chunk (the u32s of a sketch). ON DISK in sketch objects: DO NOT CHANGE.
pub const SUPER_FEATURES: usize = 3;
/// Features hashed into one super-feature.
pub const FEATURES_PER_SF: usize = 4;
const FEATURES: usize = SUPER_FEATURES * FEATURES_PER_SF;
/// A gram is sampled when its hash's top SAMPLE_BITS bits are zero: 1 in 32.
const SAMPLE_BITS: u32 = 5;
/// Chunks shorter than this get no sketch (all zeros).
pub const MIN_SKETCH_BYTES: usize = 256;
/// The version of the sketch function, recorded in sketch objects. ON DISK: DO NOT CHANGE.
pub const SKETCH_VERSION: u32 = 1;

/// Codec id of a delta chunk. ON DISK: DO NOT CHANGE.
pub const CODEC_DELTA: u8 = 3;

/// Odd multipliers and offsets of the linear transforms (fixed: sketches are stored).
const TRANSFORMS: [(u64, u64); FEATURES] = [
    (0x9E37_79B9_7F4A_7C15, 0x2545_F491_4F6C_DD1D),
    (0xC2B2_AE3D_27D4_EB4F, 0x1656_67B1_9E37_79F9),
    (0x1656_67B1_9E37_79F9, 0x85EB_CA77_C2B2_AE63),
    (0x85EB_CA77_C2B2_AE63, 0x27D4_EB2F_1656_67C5),
    (0x27D4_EB2F_1656_67C5, 0x9E37_79B9_7F4A_7C15),
    (0xFF51_AFD7_ED55_8CCD, 0xC4CE_B9FE_1A85_EC53),
    (0xC4CE_B9FE_1A85_EC53, 0xFF51_AFD7_ED55_8CCD),
    (0xD6E8_FEB8_6659_FD93, 0xA076_1D64_78BD_642F),
    (0xA076_1D64_78BD_642F, 0xE703_7ED1_A0B4_28DB),
    (0xE703_7ED1_A0B4_28DB, 0x8EBC_6AF0_9C88_C6E3),
    (0x8EBC_6AF0_9C88_C6E3, 0x5899_65CC_7537_4CC3),
    (0x5899_65CC_7537_4CC3, 0xD6E8_FEB8_6659_FD93),
];

#[inline]
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

/// The sketch of one chunk: SUPER_FEATURES non-zero u32s, or all zeros (no sketch).
pub fn sketch(chunk: &[u8]) -> [u32; SUPER_FEATURES] {
    let mut out = [0u32; SUPER_FEATURES];
    if chunk.len() < MIN_SKETCH_BYTES {
        return out;
    }
    let mut feats = [0u64; FEATURES];
    let mut sampled = 0usize;
    let last = chunk.len() - 8;
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    // Grams are offset before hashing, so that all-zero grams are not always sampled.
    const X: u64 = 0x6A09_E667_F3BC_C908;
    // A budget of samples: a run of equal or periodic grams (zeros in a disk image) would
    // otherwise sample at every position; normal content samples 1 in 32, under the budget.
    let budget = chunk.len() / 16;
    let mut last_h = u64::MAX;
    let mut take = |h: u64| {
        // A gram equal to the last one sampled (a run) adds nothing.
        if sampled >= budget || h == last_h {
            return;
        }
        last_h = h;
        sampled += 1;
        let g = mix64(h);
        for (f, &(m, a)) in feats.iter_mut().zip(TRANSFORMS.iter()) {
            let v = g.wrapping_mul(m).wrapping_add(a);
            if v > *f {
                *f = v;
            }
        }
    };
    let p = chunk.as_ptr();
    let mut i = 0usize;
    // The hot loop: one unaligned load and one multiply per position; samples are rare.
    while i + 3 <= last {
        // SAFETY: i + 3 + 8 <= chunk.len(), so all four 8-byte reads are inside the chunk.
        let (h0, h1, h2, h3) = unsafe {
            (
                ((p.add(i) as *const u64).read_unaligned().to_le() ^ X).wrapping_mul(K),
                ((p.add(i + 1) as *const u64).read_unaligned().to_le() ^ X).wrapping_mul(K),
                ((p.add(i + 2) as *const u64).read_unaligned().to_le() ^ X).wrapping_mul(K),
                ((p.add(i + 3) as *const u64).read_unaligned().to_le() ^ X).wrapping_mul(K),
            )
        };
        if (h0.min(h1).min(h2).min(h3) >> (64 - SAMPLE_BITS)) == 0 {
            for h in [h0, h1, h2, h3] {
                if (h >> (64 - SAMPLE_BITS)) == 0 {
                    take(h);
                }
            }
        }
        i += 4;
    }
    while i <= last {
        let h = (u64::from_le_bytes(chunk[i..i + 8].try_into().unwrap()) ^ X).wrapping_mul(K);
        if (h >> (64 - SAMPLE_BITS)) == 0 {
            take(h);
        }
        i += 1;
    }
    if sampled == 0 {
        return out;
    }
    for (s, group) in out.iter_mut().zip(feats.chunks_exact(FEATURES_PER_SF)) {
        let mut h = 0x5851_F42D_4C95_7F2Du64;
        for &f in group {
            h = mix64(h ^ f);
        }
        // Zero means "no sketch": never produced for a real one.
        *s = ((h >> 32) as u32).max(1);
    }
    out
}

/// Sketches of pieces ([offset, length] each) of data: SUPER_FEATURES u32s per piece.
pub fn sketch_many(data: &[u8], pieces: &[(usize, usize)]) -> Result<Vec<u32>, String> {
    let mut out = Vec::with_capacity(pieces.len() * SUPER_FEATURES);
    for (i, &(off, len)) in pieces.iter().enumerate() {
        let end = off.checked_add(len).filter(|&e| e <= data.len()).ok_or_else(|| format!("piece {i} ({off}+{len}) runs past data ({})", data.len()))?;
        out.extend_from_slice(&sketch(&data[off..end]));
    }
    Ok(out)
}

/// Encodes `target` against `base`: a zstd frame at `level` using base as a raw prefix.
pub fn encode<'a>(cctx: &mut zstd::zstd_safe::CCtx<'a>, base: &'a [u8], target: &[u8], level: i32) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::CParameter;
    cctx.set_parameter(CParameter::CompressionLevel(level)).map_err(|c| format!("zstd level {level}: {}", zstd::zstd_safe::get_error_name(c)))?;
    // The window must reach back over the whole base.
    let window_log = (usize::BITS - (base.len() + target.len()).max(1 << 10).leading_zeros()).clamp(10, 27);
    cctx.set_parameter(CParameter::WindowLog(window_log)).map_err(|c| format!("zstd window: {}", zstd::zstd_safe::get_error_name(c)))?;
    cctx.ref_prefix(base).map_err(|c| format!("zstd prefix: {}", zstd::zstd_safe::get_error_name(c)))?;
    let mut out: Vec<u8> = Vec::with_capacity(zstd::zstd_safe::compress_bound(target.len()));
    cctx.compress2(&mut out, target).map_err(|c| format!("zstd: {}", zstd::zstd_safe::get_error_name(c)))?;
    Ok(out)
}

/// Decodes a frame made by `encode` against the same base into `out`, which must be exactly
/// the chunk's raw length; returns the decoded length (an error if the frame holds more).
pub fn decode_into(base: &[u8], frame: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let mut dctx = zstd::zstd_safe::DCtx::create();
    dctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27)).map_err(|c| format!("zstd window: {}", zstd::zstd_safe::get_error_name(c)))?;
    dctx.ref_prefix(base).map_err(|c| format!("zstd prefix: {}", zstd::zstd_safe::get_error_name(c)))?;
    dctx.decompress(out, frame).map_err(|c| format!("delta frame: {}", zstd::zstd_safe::get_error_name(c)))
}

/// Length of a delta blob's header (base fingerprint 32, checksum 16) before its frame.
pub const BLOB_HEADER: usize = 48;

/// One delta chunk of a batch for `decode_many`: where its blob, base and place lie, and
/// the fingerprints it must match.
pub struct DecodeJob {
    pub blob: (usize, usize),
    pub base: (usize, usize),
    pub dest: (usize, usize),
}

/// The range [o, o + l) of something `len` long, if it fits.
fn span((o, l): (usize, usize), len: usize) -> Option<std::ops::Range<usize>> {
    o.checked_add(l).filter(|&e| e <= len).map(|e| o..e)
}

/// Job `i`'s delta blob (`blob` = its place in `blobs`), checked before any decoding: long
/// enough, its frame matching its checksum, and naming the base its recipe names
/// (`base_fps[32i..]`). Returns the frame, that base fingerprint and the chunk's own
/// fingerprint (`fps[32i..]`), which the decoded bytes must match.
fn checked_blob<'a>(i: usize, blob: (usize, usize), blobs: &'a [u8], base_fps: &'a [u8], fps: &'a [u8]) -> Result<(&'a [u8], &'a [u8], &'a [u8]), (usize, String)> {
    let fail = |m: String| (i, m);
    let blob = &blobs[span(blob, blobs.len()).ok_or_else(|| fail("blob runs past the data".into()))?];
    if blob.len() <= BLOB_HEADER {
        return Err(fail(format!("delta blob of {} bytes is too short", blob.len())));
    }
    let frame = &blob[BLOB_HEADER..];
    if blake3::hash(frame).as_bytes()[..16] != blob[32..48] {
        return Err(fail("delta blob fails its checksum".into()));
    }
    let (bfp, fp) = (base_fps.get(32 * i..32 * i + 32).ok_or_else(|| fail("no base fingerprint".into()))?, fps.get(32 * i..32 * i + 32).ok_or_else(|| fail("no fingerprint".into()))?);
    if blob[..32] != bfp[..] {
        return Err(fail("the delta names another base than its recipe".into()));
    }
    Ok((frame, bfp, fp))
}

/// Decodes a batch of delta blobs (codec 3) into their places in `out`, one decoder context
/// for all: each blob's checksum (the first 16 bytes of BLAKE3 of its frame), the base it
/// names (`base_fps[32i..]`), the decoded length and the chunk's fingerprint (`fps[32i..]`)
/// are checked. Returns Err((index, reason)) for the first chunk that fails.
pub fn decode_many(bases: &[u8], blobs: &[u8], out: &mut [u8], jobs: &[DecodeJob], base_fps: &[u8], fps: &[u8]) -> Result<(), (usize, String)> {
    let mut dctx = zstd::zstd_safe::DCtx::create();
    dctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27)).map_err(|c| (0, format!("zstd window: {}", zstd::zstd_safe::get_error_name(c))))?;
    for (i, j) in jobs.iter().enumerate() {
        let fail = |m: String| (i, m);
        let (frame, _, fp) = checked_blob(i, j.blob, blobs, base_fps, fps)?;
        let base = &bases[span(j.base, bases.len()).ok_or_else(|| fail("base runs past the bases".into()))?];
        let dest = span(j.dest, out.len()).ok_or_else(|| fail("place runs past the output".into()))?;
        let place = &mut out[dest];
        dctx.ref_prefix(base).map_err(|c| fail(format!("zstd prefix: {}", zstd::zstd_safe::get_error_name(c))))?;
        let n = dctx.decompress(&mut *place, frame).map_err(|c| fail(format!("delta frame: {}", zstd::zstd_safe::get_error_name(c))))?;
        if n != place.len() {
            return Err(fail(format!("decoded to {n} bytes, expected {}", place.len())));
        }
        if crate::chunker::fingerprint(None, place).as_bytes()[..] != fp[..] {
            return Err(fail("delta chunk fails its fingerprint after decoding".into()));
        }
    }
    Ok(())
}

/// One delta chunk of a batch for `decode_many_stored`: its blob, its base's *stored* form
/// (as in the base's pack: codec 0, 1 or 2) and its place.
pub struct StoredJob {
    pub blob: (usize, usize),
    pub base: crate::codec::Piece,
    pub dest: (usize, usize),
}

thread_local! {
    /// Where decode_many_stored decodes bases: grown to the largest base, kept per thread
    /// (a base is decoded here, used at once while it is in cache, and never kept).
    static BASE_SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::new());
}

/// decode_many with each base given in its stored form (`base_data` holds the bytes read
/// from the bases' packs): each base is decoded into a per-thread scratch buffer, then the
/// delta is decoded against it as in decode_many (blob checksum, named base, length and the
/// chunk's fingerprint checked). A base used by consecutive jobs (same stored place) is
/// decoded once. No decoded base outlives the call: restore memory holds stored bases only.
///
/// A base is hashed against its own fingerprint (`base_fps[32i..]`) only when the chunk
/// decoded from it fails its fingerprint, to say which of the two is damaged: the chunk's
/// fingerprint already proves every byte the restore emits, so hashing every base first
/// (64 KiB more of BLAKE3 per delta chunk, ~6 % of a dump restore's CPU) proved nothing more.
/// A damaged base that the delta does not copy from leaves the chunk whole; `check
/// --read-data` reads every base as a chunk of its own.
/// Err((index, reason)); a reason about the base starts with "its base".
pub fn decode_many_stored(base_data: &[u8], blobs: &[u8], out: &mut [u8], jobs: &[StoredJob], base_fps: &[u8], fps: &[u8]) -> Result<(), (usize, String)> {
    use crate::codec::{decompress_into, raw_of, stored_of, CODEC_NONE};
    let mut dctx = zstd::zstd_safe::DCtx::create();
    dctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27)).map_err(|c| (0, format!("zstd window: {}", zstd::zstd_safe::get_error_name(c))))?;
    BASE_SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        // The stored place and fingerprint of the base last decoded into scratch: a job
        // naming the same place and fingerprint reuses it.
        let mut current: Option<(usize, usize, [u8; 32])> = None;
        for (i, j) in jobs.iter().enumerate() {
            let fail = |m: String| (i, m);
            let (frame, bfp, fp) = checked_blob(i, j.blob, blobs, base_fps, fps)?;
            let dest = span(j.dest, out.len()).ok_or_else(|| fail("place runs past the output".into()))?;
            let stored = stored_of(i, base_data, &j.base).map_err(|(i, m)| (i, format!("its base: {m}")))?;
            let place = (j.base.offset, j.base.stored_length, <[u8; 32]>::try_from(bfp).expect("32 bytes"));
            let base: &[u8] = if j.base.codec == CODEC_NONE {
                raw_of(i, &j.base, stored).map_err(|(i, m)| (i, format!("its base: {m}")))?
            } else {
                if current != Some(place) {
                    if scratch.len() < j.base.raw_length {
                        scratch.resize(j.base.raw_length, 0);
                    }
                    let dst = &mut scratch[..j.base.raw_length];
                    decompress_into(i, &j.base, stored, dst).map_err(|(i, m)| (i, format!("its base does not decode: {m}")))?;
                    current = Some(place);
                }
                &scratch[..j.base.raw_length]
            };
            let place_out = &mut out[dest];
            // SAFETY: a prefix is single-use (zstd lets go of it when the frame ends) and the
            // session is reset right after, so the context never keeps `base` past this
            // iteration, during which neither scratch nor base_data changes.
            let base: &'static [u8] = unsafe { std::mem::transmute::<&[u8], &'static [u8]>(base) };
            let r = dctx.ref_prefix(base).map_err(|c| fail(format!("zstd prefix: {}", zstd::zstd_safe::get_error_name(c)))).and_then(|_| dctx.decompress(&mut *place_out, frame).map_err(|c| fail(format!("delta frame: {}", zstd::zstd_safe::get_error_name(c)))));
            let _ = dctx.reset(zstd::zstd_safe::ResetDirective::SessionOnly);
            let n = r?;
            if n != place_out.len() {
                return Err(fail(format!("decoded to {n} bytes, expected {}", place_out.len())));
            }
            if crate::chunker::fingerprint(None, place_out).as_bytes()[..] != fp[..] {
                if crate::chunker::fingerprint(None, base).as_bytes()[..] != bfp[..] {
                    return Err(fail("its base fails its fingerprint: the base's stored bytes are not what was stored".into()));
                }
                return Err(fail("delta chunk fails its fingerprint after decoding".into()));
            }
        }
        Ok(())
    })
}

/// Encodes many targets, each against its base: `pairs` are (baseOffset, baseLength,
/// targetOffset, targetLength) into `bases` and `data`. Returns each frame's length (0 when
/// the frame would not be smaller than `limit[i]`, then nothing is written for it) and the
/// frames back to back.
pub fn encode_many(bases: &[u8], data: &[u8], pairs: &[(usize, usize, usize, usize)], limits: &[u32], level: i32) -> Result<(Vec<u32>, Vec<u8>), String> {
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cctx = slot.get_or_insert_with(zstd::zstd_safe::CCtx::create);
        let mut lens = Vec::with_capacity(pairs.len());
        let mut out = Vec::new();
        for (i, &(bo, bl, to, tl)) in pairs.iter().enumerate() {
            let base = bo.checked_add(bl).filter(|&e| e <= bases.len()).map(|e| &bases[bo..e]).ok_or_else(|| format!("base {i} ({bo}+{bl}) runs past bases ({})", bases.len()))?;
            let target = to.checked_add(tl).filter(|&e| e <= data.len()).map(|e| &data[to..e]).ok_or_else(|| format!("target {i} ({to}+{tl}) runs past data ({})", data.len()))?;
            // SAFETY: a prefix is single-use: zstd lets go of it when the frame ends, and the
            // session is reset below whatever happened, so the context never keeps `base`
            // past this iteration (the 'static is only what a per-thread context needs).
            let base: &'static [u8] = unsafe { std::mem::transmute::<&[u8], &'static [u8]>(base) };
            let frame = encode(cctx, base, target, level);
            let _ = cctx.reset(zstd::zstd_safe::ResetDirective::SessionOnly);
            let frame = frame?;
            let limit = limits.get(i).copied().unwrap_or(u32::MAX) as usize;
            if frame.len() < limit {
                lens.push(frame.len() as u32);
                out.extend_from_slice(&frame);
            } else {
                lens.push(0);
            }
        }
        Ok((lens, out))
    })
}

thread_local! {
    /// One delta encoder per thread (libuv's pool): a context's workspace is a few MB, and
    /// creating one per call cost page faults on every batch.
    static ENCODER: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = std::cell::RefCell::new(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    }

    fn edited(base: &[u8], every: usize) -> Vec<u8> {
        let mut t = base.to_vec();
        let mut i = 100;
        while i < t.len() {
            t[i] ^= 0x5a;
            i += every;
        }
        t
    }

    #[test]
    fn similar_chunks_share_super_features_unrelated_do_not() {
        let base = noise(64 * 1024, 1);
        let near = edited(&base, 8000);
        let other = noise(64 * 1024, 2);
        let (a, b, c) = (sketch(&base), sketch(&near), sketch(&other));
        assert!(a.iter().all(|&s| s != 0));
        assert!(a.iter().zip(b.iter()).filter(|(x, y)| x == y).count() >= 1, "{a:?} {b:?}");
        assert_eq!(a.iter().zip(c.iter()).filter(|(x, y)| x == y).count(), 0);
        // Shifted content (an insertion at the front) keeps its features.
        let mut shifted = vec![7u8; 13];
        shifted.extend_from_slice(&base);
        assert!(sketch(&shifted).iter().zip(a.iter()).filter(|(x, y)| x == y).count() >= 2);
    }

    #[test]
    fn runs_of_zeros_are_sketched_quickly() {
        let zeros = vec![0u8; 256 * 1024];
        let t = std::time::Instant::now();
        for _ in 0..20 {
            std::hint::black_box(sketch(&zeros));
        }
        // The sample budget bounds the work (unoptimised build: generous bound).
        assert!(t.elapsed().as_secs_f64() < 5.0, "{:?}", t.elapsed());
        let mut pattern = noise(64 * 1024, 9);
        pattern[1000..40_000].fill(0);
        assert!(sketch(&pattern).iter().all(|&s| s != 0));
    }

    #[test]
    fn short_chunks_have_no_sketch() {
        assert_eq!(sketch(&[1u8; 100]), [0, 0, 0]);
        assert_eq!(sketch_many(&noise(1000, 3), &[(0, 100), (100, 900)]).unwrap()[..3], [0, 0, 0]);
        assert!(sketch_many(&[0u8; 10], &[(5, 6)]).is_err());
    }

    #[test]
    fn delta_round_trip_is_small_and_needs_the_base() {
        let base = noise(64 * 1024, 5);
        let target = edited(&base, 10_000);
        let mut cctx = zstd::zstd_safe::CCtx::create();
        let frame = encode(&mut cctx, &base, &target, 3).unwrap();
        assert!(frame.len() < 1000, "delta of a 7-byte edit is {} bytes", frame.len());
        let mut out = vec![0u8; target.len()];
        assert_eq!(decode_into(&base, &frame, &mut out).unwrap(), target.len());
        assert_eq!(out, target);
        // The wrong base gives wrong bytes or an error, never the target.
        let wrong = noise(64 * 1024, 6);
        let mut out2 = vec![0u8; target.len()];
        assert!(decode_into(&wrong, &frame, &mut out2).map(|_| out2 != target).unwrap_or(true));
        // Too small an output is an error, not a truncation.
        assert!(decode_into(&base, &frame, &mut vec![0u8; target.len() - 1]).is_err());
        // A base starting with zstd's dictionary magic is still plain content.
        let mut magic = base.clone();
        magic[..4].copy_from_slice(&[0x37, 0xA4, 0x30, 0xEC]);
        let f = encode(&mut zstd::zstd_safe::CCtx::create(), &magic, &target, 3).unwrap();
        let mut out3 = vec![0u8; target.len()];
        decode_into(&magic, &f, &mut out3).unwrap();
        assert_eq!(out3, target);
    }

    #[test]
    fn decode_many_checks_and_places_every_chunk() {
        let base = noise(32 * 1024, 11);
        let t1 = edited(&base, 3000);
        let frame = encode(&mut zstd::zstd_safe::CCtx::create(), &base, &t1, 3).unwrap();
        let bfp = crate::chunker::fingerprint(None, &base);
        let fp = crate::chunker::fingerprint(None, &t1);
        let mut blob = bfp.as_bytes().to_vec();
        blob.extend_from_slice(&blake3::hash(&frame).as_bytes()[..16]);
        blob.extend_from_slice(&frame);
        let blobs = [blob.clone(), blob.clone()].concat();
        let jobs = [DecodeJob { blob: (0, blob.len()), base: (0, base.len()), dest: (10, t1.len()) }, DecodeJob { blob: (blob.len(), blob.len()), base: (0, base.len()), dest: (10 + t1.len(), t1.len()) }];
        let fps = [fp.as_bytes().to_vec(), fp.as_bytes().to_vec()].concat();
        let bfps = [bfp.as_bytes().to_vec(), bfp.as_bytes().to_vec()].concat();
        let mut out = vec![0u8; 10 + 2 * t1.len()];
        decode_many(&base, &blobs, &mut out, &jobs, &bfps, &fps).unwrap();
        assert_eq!(&out[10..10 + t1.len()], &t1[..]);
        assert_eq!(&out[10 + t1.len()..], &t1[..]);
        // A damaged frame fails its checksum; a wrong base fingerprint is named.
        let mut bad = blobs.clone();
        bad[blob.len() + 60] ^= 1;
        assert_eq!(decode_many(&base, &bad, &mut out, &jobs, &bfps, &fps).unwrap_err().0, 1);
        let mut wrong = bfps.clone();
        wrong[0] ^= 1;
        assert!(decode_many(&base, &blobs, &mut out, &jobs, &wrong, &fps).unwrap_err().1.contains("another base"));
        let mut wfp = fps.clone();
        wfp[40] ^= 1;
        assert!(decode_many(&base, &blobs, &mut out, &jobs, &bfps, &wfp).unwrap_err().1.contains("fingerprint"));
    }

    #[test]
    fn decode_many_stored_decodes_checks_and_reuses_bases() {
        use crate::codec::{Piece, CODEC_NONE, CODEC_ZSTD};
        let base = noise(32 * 1024, 21);
        let t1 = edited(&base, 3000);
        let t2 = edited(&base, 5000);
        let bfp = crate::chunker::fingerprint(None, &base);
        let blob_of = |t: &[u8]| {
            let frame = encode(&mut zstd::zstd_safe::CCtx::create(), &base, t, 3).unwrap();
            let mut b = bfp.as_bytes().to_vec();
            b.extend_from_slice(&blake3::hash(&frame).as_bytes()[..16]);
            b.extend_from_slice(&frame);
            b
        };
        let (b1, b2) = (blob_of(&t1), blob_of(&t2));
        let blobs = [b1.clone(), b2.clone()].concat();
        let z = zstd::bulk::compress(&base, 3).unwrap();
        // Stored bases: a zstd one at 5, a raw one after it.
        let mut stored = vec![9u8; 5];
        stored.extend_from_slice(&z);
        stored.extend_from_slice(&base);
        let zp = || Piece { offset: 5, stored_length: z.len(), raw_length: base.len(), codec: CODEC_ZSTD };
        let rp = || Piece { offset: 5 + z.len(), stored_length: base.len(), raw_length: base.len(), codec: CODEC_NONE };
        let jobs = vec![
            StoredJob { blob: (0, b1.len()), base: zp(), dest: (0, t1.len()) },
            StoredJob { blob: (b1.len(), b2.len()), base: zp(), dest: (t1.len(), t2.len()) },
            StoredJob { blob: (0, b1.len()), base: rp(), dest: (t1.len() + t2.len(), t1.len()) },
        ];
        let fps = [crate::chunker::fingerprint(None, &t1).as_bytes().to_vec(), crate::chunker::fingerprint(None, &t2).as_bytes().to_vec(), crate::chunker::fingerprint(None, &t1).as_bytes().to_vec()].concat();
        let bfps = bfp.as_bytes().repeat(3);
        let mut out = vec![0u8; 2 * t1.len() + t2.len()];
        decode_many_stored(&stored, &blobs, &mut out, &jobs, &bfps, &fps).unwrap();
        assert_eq!(out, [t1.clone(), t2.clone(), t1.clone()].concat());
        // A damaged stored base is named, whether compressed or raw: its fingerprint is
        // checked when the chunk decoded from it fails its own.
        let mut bad = stored.clone();
        bad[5 + z.len() + 1000] ^= 1;
        let e = decode_many_stored(&bad, &blobs, &mut out, &jobs, &bfps, &fps).unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.starts_with("its base"), "{}", e.1);
        // A damaged byte the delta does not copy (byte 100 of t1 is a literal: edited)
        // leaves every chunk whole, and the chunks' fingerprints prove it.
        let mut unused = stored.clone();
        unused[5 + z.len() + 100] ^= 1;
        decode_many_stored(&unused, &blobs, &mut out, &jobs, &bfps, &fps).unwrap();
        assert_eq!(out, [t1.clone(), t2.clone(), t1.clone()].concat());
        let mut badz = stored.clone();
        badz[5 + z.len() / 2] ^= 0x40;
        let e = decode_many_stored(&badz, &blobs, &mut out, &jobs, &bfps, &fps).unwrap_err();
        assert_eq!(e.0, 0);
        assert!(e.1.starts_with("its base"), "{}", e.1);
        // The chunk's own fingerprint is still checked.
        let mut wfp = fps.clone();
        wfp[33] ^= 1;
        assert!(decode_many_stored(&stored, &blobs, &mut out, &jobs, &bfps, &wfp).unwrap_err().1.contains("fingerprint after decoding"));
        // A base place past the data is an error, not a panic.
        let far = vec![StoredJob { blob: (0, b1.len()), base: Piece { offset: stored.len(), stored_length: 10, raw_length: 10, codec: CODEC_ZSTD }, dest: (0, t1.len()) }];
        assert!(decode_many_stored(&stored, &blobs, &mut out, &far, &bfps[..32], &fps[..32]).is_err());
    }

    #[test]
    fn encode_many_skips_frames_over_their_limit() {
        let base = noise(32 * 1024, 7);
        let t1 = edited(&base, 4000);
        let t2 = noise(32 * 1024, 8);
        let data = [t1.clone(), t2].concat();
        let (lens, out) = encode_many(&base, &data, &[(0, base.len(), 0, t1.len()), (0, base.len(), t1.len(), 32 * 1024)], &[20_000, 20_000], 3).unwrap();
        assert!(lens[0] > 0 && lens[0] < 2000);
        assert_eq!(lens[1], 0);
        assert_eq!(out.len(), lens[0] as usize);
        let mut back = vec![0u8; t1.len()];
        decode_into(&base, &out, &mut back).unwrap();
        assert_eq!(back, t1);
        assert!(encode_many(&base, &data, &[(0, base.len() + 1, 0, 10)], &[], 3).is_err());
    }
}
