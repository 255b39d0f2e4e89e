//! N-API glue of the delta module (crate::delta): sketches and the delta codec (codec 3).
//! A child of napi.rs so that it shares its argument helpers; registered in its export table.

use super::*;
use crate::delta::{decode_into, decode_many, decode_many_stored, encode_many, sketch_many, DecodeJob, StoredJob, SUPER_FEATURES};

fn u32_value(env: napi_env, v: &[u32]) -> JsResult<napi_value> {
    let mut bytes = Vec::with_capacity(4 * v.len());
    for x in v {
        bytes.extend_from_slice(&x.to_ne_bytes());
    }
    new_typed_array(env, NAPI_UINT32_ARRAY, v.len(), &bytes)
}

/// deltaSketchAsync(data, pieces: Uint32Array [offset, length]×n)
///   -> Promise<Uint32Array(3n)>: each piece's super-features (all 0: no sketch), on the
///   libuv pool. data must not change until it settles.
pub(super) unsafe extern "C" fn js_delta_sketch_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<2>(env, info, |env, a| {
        let data = bytes_arg(env, a[0], "data")?;
        let pairs = u32s_arg(env, a[1], "pieces")?;
        if pairs.len() % 2 != 0 {
            return Err(bad_argument(format!("pieces has {} numbers, not a multiple of 2", pairs.len())));
        }
        let pieces: Vec<(usize, usize)> = pairs.chunks_exact(2).map(|p| (p[0] as usize, p[1] as usize)).collect();
        if let Some(i) = pieces.iter().position(|&(o, l)| o + l > data.len) {
            return Err(bad_argument(format!("piece {i} runs past data ({})", data.len)));
        }
        debug_assert_eq!(SUPER_FEATURES, 3);
        // SAFETY: a napi_ref on data holds it until work_complete; the caller leaves it alone.
        let job = Box::new(move || sketch_many(unsafe { data.as_slice() }, &pieces));
        start_work(env, "chunkyard:deltaSketch", &[a[0]], job, |env, r: Result<Vec<u32>, String>| u32_value(env, &r.map_err(bad_argument)?), None)
    })
}

/// deltaEncodeManyAsync(bases, data, pairs: Uint32Array [baseOffset, baseLength, offset, length]×n,
///   limits: Uint32Array(n), level) -> Promise<[lengths: Uint32Array(n), frames: Buffer]>
/// Each target encoded against its base (zstd, base as raw prefix); a frame not smaller than
/// its limit is dropped (length 0). bases and data must not change until it settles.
pub(super) unsafe extern "C" fn js_delta_encode_many_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let bases = bytes_arg(env, a[0], "bases")?;
        let data = bytes_arg(env, a[1], "data")?;
        let quads = u32s_arg(env, a[2], "pairs")?;
        let limits = u32s_arg(env, a[3], "limits")?;
        let level = number(env, a[4], "level")?;
        if quads.len() % 4 != 0 || limits.len() != quads.len() / 4 {
            return Err(bad_argument(format!("pairs has {} numbers and limits {}: need 4 per pair and 1 limit per pair", quads.len(), limits.len())));
        }
        if !(level.fract() == 0.0 && (1.0..=19.0).contains(&level)) {
            return Err(bad_argument(format!("level = {level}: must be a whole number from 1 to 19")));
        }
        let pairs: Vec<(usize, usize, usize, usize)> = quads.chunks_exact(4).map(|q| (q[0] as usize, q[1] as usize, q[2] as usize, q[3] as usize)).collect();
        let level = level as i32;
        // SAFETY: napi_refs on bases and data hold them until work_complete.
        let job = Box::new(move || encode_many(unsafe { bases.as_slice() }, unsafe { data.as_slice() }, &pairs, &limits, level));
        start_work(
            env,
            "chunkyard:deltaEncodeMany",
            &[a[0], a[1]],
            job,
            |env, r: Result<(Vec<u32>, Vec<u8>), String>| {
                let (lens, frames) = r.map_err(bad_argument)?;
                pair(env, u32_value(env, &lens)?, buffer(env, &frames)?)
            },
            None,
        )
    })
}

/// deltaDecodeInto(base, frame, out) -> [decodedLength, reason]: -1 and a reason when the
/// frame is damaged, needs another base, or holds more than out. Synchronous (one chunk).
pub(super) unsafe extern "C" fn js_delta_decode_into(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, |env, a| {
        let base = bytes_arg(env, a[0], "base")?;
        let frame = bytes_arg(env, a[1], "frame")?;
        let out = bytes_arg(env, a[2], "out")?;
        // SAFETY: all three are arguments of this call; out is ours to write until it returns.
        let (n, reason) = match decode_into(base.as_slice(), frame.as_slice(), out.as_mut_slice()) {
            Ok(n) => (n as f64, String::new()),
            Err(m) => (-1.0, m),
        };
        number_and_reason(env, n, &reason)
    })
}

/// deltaDecodeAsync(base, frame, out, fingerprint) -> Promise<[decodedLength, reason]>:
/// deltaDecodeInto on the libuv pool, and the decoded bytes checked against the 32-byte
/// fingerprint (unkeyed BLAKE3): -1 and a reason on any failure. base, frame and fingerprint
/// must not change, and out not be touched, until it settles.
pub(super) unsafe extern "C" fn js_delta_decode_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<4>(env, info, |env, a| {
        let base = bytes_arg(env, a[0], "base")?;
        let frame = bytes_arg(env, a[1], "frame")?;
        let out = bytes_arg(env, a[2], "out")?;
        let fp = bytes_arg(env, a[3], "fingerprint")?;
        if fp.len != 32 {
            return Err(bad_argument(format!("fingerprint has {} bytes, expected 32", fp.len)));
        }
        let job = Box::new(move || {
            // SAFETY: napi_refs hold all four until work_complete; the caller leaves them alone.
            let (base, frame, out, fp) = unsafe { (base.as_slice(), frame.as_slice(), out.as_mut_slice(), fp.as_slice()) };
            match decode_into(base, frame, out) {
                Ok(n) if n == out.len() => {
                    if crate::chunker::fingerprint(None, out).as_bytes()[..] == fp[..] {
                        (n as f64, String::new())
                    } else {
                        (-1.0, "delta chunk fails its fingerprint after decoding".to_string())
                    }
                }
                Ok(n) => (-1.0, format!("decoded to {n} bytes, expected {}", out.len())),
                Err(m) => (-1.0, m),
            }
        });
        start_work(
            env,
            "chunkyard:deltaDecode",
            &[a[0], a[1], a[2], a[3]],
            job,
            |env, (n, reason): (f64, String)| {
                number_and_reason(env, n, &reason)
            },
            None,
        )
    })
}

/// deltaDecodeManyAsync(bases, blobs, out, places: Uint32Array [blobOffset, blobLength,
///   baseOffset, baseLength, destOffset, destLength]×n, baseFingerprints (32n), fingerprints (32n))
///   -> Promise<[index, reason]>: every delta blob decoded against its base into
///   out[dest..], its checksum, named base and decoded fingerprint checked, on the libuv pool
///   with one decoder context; index -1 when all are good, else the first that failed. None
///   of the buffers may change (and out not be touched) until it settles.
pub(super) unsafe extern "C" fn js_delta_decode_many_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<6>(env, info, |env, a| {
        let bases = bytes_arg(env, a[0], "bases")?;
        let blobs = bytes_arg(env, a[1], "blobs")?;
        let out = bytes_arg(env, a[2], "out")?;
        let six = u32s_arg(env, a[3], "places")?;
        let base_fps = bytes_arg(env, a[4], "baseFingerprints")?;
        let fps = bytes_arg(env, a[5], "fingerprints")?;
        if six.len() % 6 != 0 || base_fps.len != six.len() / 6 * 32 || fps.len != six.len() / 6 * 32 {
            return Err(bad_argument(format!("places has {} numbers, baseFingerprints {} bytes, fingerprints {}: need 6 numbers and 32 + 32 bytes per chunk", six.len(), base_fps.len, fps.len)));
        }
        let jobs: Vec<DecodeJob> = six.chunks_exact(6).map(|q| DecodeJob { blob: (q[0] as usize, q[1] as usize), base: (q[2] as usize, q[3] as usize), dest: (q[4] as usize, q[5] as usize) }).collect();
        let job = Box::new(move || {
            // SAFETY: napi_refs hold all six until work_complete; the caller leaves them alone.
            let (bases, blobs, out, bfps, fps) = unsafe { (bases.as_slice(), blobs.as_slice(), out.as_mut_slice(), base_fps.as_slice(), fps.as_slice()) };
            match decode_many(bases, blobs, out, &jobs, bfps, fps) {
                Ok(()) => (-1.0, String::new()),
                Err((i, m)) => (i as f64, m),
            }
        });
        start_work(env, "chunkyard:deltaDecodeMany", &[a[0], a[1], a[2], a[4], a[5]], job, |env, (n, reason): (f64, String)| number_and_reason(env, n, &reason), None)
    })
}

/// deltaDecodeStoredAsync(baseData, blobs, out, places: Uint32Array [blobOffset, blobLength,
///   baseOffset, baseStoredLength, baseRawLength, baseCodec, destOffset, destLength]×n,
///   baseFingerprints (32n), fingerprints (32n)) -> Promise<[index, reason]>: as
///   deltaDecodeManyAsync, with each base given in its stored form within baseData (decoded
///   and checked against its fingerprint here, in a per-thread scratch buffer). index -1 when
///   all are good. None of the buffers may change (and out not be touched) until it settles.
pub(super) unsafe extern "C" fn js_delta_decode_stored_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<6>(env, info, |env, a| {
        let base_data = bytes_arg(env, a[0], "baseData")?;
        let blobs = bytes_arg(env, a[1], "blobs")?;
        let out = bytes_arg(env, a[2], "out")?;
        let eight = u32s_arg(env, a[3], "places")?;
        let base_fps = bytes_arg(env, a[4], "baseFingerprints")?;
        let fps = bytes_arg(env, a[5], "fingerprints")?;
        if eight.len() % 8 != 0 || base_fps.len != eight.len() / 8 * 32 || fps.len != eight.len() / 8 * 32 {
            return Err(bad_argument(format!("places has {} numbers, baseFingerprints {} bytes, fingerprints {}: need 8 numbers and 32 + 32 bytes per chunk", eight.len(), base_fps.len, fps.len)));
        }
        if let Some(q) = eight.chunks_exact(8).find(|q| q[5] > 2) {
            return Err(bad_argument(format!("base codec {} is not 0, 1 or 2", q[5])));
        }
        let jobs: Vec<StoredJob> = eight
            .chunks_exact(8)
            .map(|q| StoredJob {
                blob: (q[0] as usize, q[1] as usize),
                base: crate::codec::Piece { offset: q[2] as usize, stored_length: q[3] as usize, raw_length: q[4] as usize, codec: q[5] as u8 },
                dest: (q[6] as usize, q[7] as usize),
            })
            .collect();
        let job = Box::new(move || {
            // SAFETY: napi_refs hold all six until work_complete; the caller leaves them alone.
            let (base_data, blobs, out, bfps, fps) = unsafe { (base_data.as_slice(), blobs.as_slice(), out.as_mut_slice(), base_fps.as_slice(), fps.as_slice()) };
            match decode_many_stored(base_data, blobs, out, &jobs, bfps, fps) {
                Ok(()) => (-1.0, String::new()),
                Err((i, m)) => (i as f64, m),
            }
        });
        start_work(env, "chunkyard:deltaDecodeStored", &[a[0], a[1], a[2], a[4], a[5]], job, |env, (n, reason): (f64, String)| number_and_reason(env, n, &reason), None)
    })
}
