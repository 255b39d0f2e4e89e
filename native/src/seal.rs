//! Sealed chunks of encrypted stores (docs/encryption.md, "Chunks"), in the same pass that
//! compresses (backup) or decompresses and hashes (restore), so a chunk's bytes are touched
//! once more at most and never cross to a JS worker. ON-DISK: the bytes must equal those of
//! src/crypto/chunk-seal.ts (node:crypto), which stays the path without this addon; the golden
//! test (test/crypto/native-seal.test.ts) compares the two.
//!
//!   sealed chunk = prefix 20 B | AES-256-GCM(stored form) | tag 16 B
//!   prefix       = SHA-256(batch salt 16 B | index in the batch u32 LE)[0..20]
//!   key          = HKDF-SHA256(ikm = chunk key, salt = prefix, info "chunkyard chunk seal v2", 32 B)
//!   nonce        = 12 zero bytes (each key seals one chunk)
//!   AD           = fingerprint 32 B | codec u8 | rawLength u32 LE
//!
//! Every chunk has a key of its own, named by its prefix, which looks random: a pack file
//! shows no pattern where its chunks begin (encryption format 2 stores sealed chunks as they
//! are, outside any further encryption layer). A reader needs only the prefix to open the
//! chunk, wherever it was copied.
//!
//! HKDF is hkdf.rs's (SHA-NI) where the CPU has the SHA extensions, else ring 0.16's (Debian's
//! librust-ring-dev), whose SHA-256 also makes the prefixes. AES-256-GCM is gcm.rs's
//! (VAES and VPCLMULQDQ on 512-bit vectors, about twice ring's speed) where the CPU has those
//! instructions, else ring's (AES-NI and PCLMULQDQ): the same bytes (gcm.rs's tests compare
//! them; CHUNKYARD_GCM_RING=1 in the environment forces ring's).

use crate::codec::{check_fingerprint, compress_one, decompress_into, raw_of, scatter_with, stored_of, FileOut, Piece, CODEC_NONE};
use ring::{aead, digest, hkdf};

pub const PREFIX: usize = 20;
pub const TAG: usize = 16;
/// Bytes a sealed chunk has beyond its stored form.
pub const OVERHEAD: usize = PREFIX + TAG;
const INFO: &[u8] = b"chunkyard chunk seal v2";

/// The public prefix of chunk `index` of the batch drawn with `salt`.
pub fn chunk_prefix(salt: &[u8; 16], index: u32) -> [u8; PREFIX] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(salt);
    ctx.update(&index.to_le_bytes());
    let mut p = [0u8; PREFIX];
    p.copy_from_slice(&ctx.finish().as_ref()[..PREFIX]);
    p
}

/// The AES-256-GCM key of one chunk: HKDF-SHA256(chunk key, prefix, INFO).
pub fn chunk_seal_key(chunk_key: &[u8; 32], prefix: &[u8]) -> aead::LessSafeKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, prefix).extract(chunk_key);
    let okm = prk.expand(&[INFO], &aead::AES_256_GCM).expect("32 bytes is a valid HKDF-SHA256 output length");
    aead::LessSafeKey::new(aead::UnboundKey::from(okm))
}

/// The raw bytes of that key, for gcm.rs (the same HKDF; ring's own AES-GCM takes it as a key object).
pub fn chunk_seal_key_bytes(chunk_key: &[u8; 32], prefix: &[u8]) -> [u8; 32] {
    hkdf32(chunk_key, prefix, INFO)
}

/// HKDF-SHA256(ikm, salt, info) with a 32-byte output: hkdf.rs's SHA-NI copy where the CPU has
/// the SHA extensions, else ring's.
pub fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    // hkdf.rs takes the short shapes of chunk and object keys (one block each); ring the rest.
    if salt.len() <= 64 && ikm.len() <= 55 && info.len() < 55 && crate::hkdf::available() {
        return crate::hkdf::hkdf_sha256_32(ikm, salt, info);
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut key = [0u8; 32];
    prk.expand(&[info], Len32).and_then(|okm| okm.fill(&mut key)).expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

/// Seals `body` in place under `key` with the zero nonce (each key seals one thing); returns
/// the tag. gcm.rs where the CPU has VAES and VPCLMULQDQ (the same bytes, about twice ring's
/// speed), else ring.
fn seal_with(key: &[u8; 32], ad: &[u8], body: &mut [u8]) -> [u8; TAG] {
    if crate::gcm::available() {
        return crate::gcm::seal_in_place(key, &[0u8; 12], ad, body);
    }
    let k = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("a 32-byte AES-256 key"));
    let tag = k.seal_in_place_separate_tag(zero_nonce(), aead::Aad::from(ad), body).expect("AES-GCM seals any length this process can hold");
    let mut t = [0u8; TAG];
    t.copy_from_slice(tag.as_ref());
    t
}

/// Opens `body` (ciphertext ‖ tag) in place under `key` and the zero nonce: the plaintext is
/// then its first len − 16 bytes. False (and nothing to use) when it does not authenticate.
fn open_with(key: &[u8; 32], ad: &[u8], body: &mut [u8]) -> bool {
    if body.len() < TAG {
        return false;
    }
    if crate::gcm::available() {
        let (ct, tag) = body.split_at_mut(body.len() - TAG);
        let tag: &[u8; TAG] = (&*tag).try_into().expect("16-byte tag");
        return crate::gcm::open_in_place(key, &[0u8; 12], ad, ct, tag);
    }
    let k = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("a 32-byte AES-256 key"));
    k.open_in_place(zero_nonce(), aead::Aad::from(ad), body).is_ok()
}

/// Seals `body` in place under the chunk's own key; returns the tag.
fn seal_body(chunk_key: &[u8; 32], prefix: &[u8], ad: &[u8], body: &mut [u8]) -> Result<[u8; TAG], ()> {
    if crate::gcm::available() {
        return Ok(crate::gcm::seal_in_place(&chunk_seal_key_bytes(chunk_key, prefix), &[0u8; 12], ad, body));
    }
    let tag = chunk_seal_key(chunk_key, prefix).seal_in_place_separate_tag(zero_nonce(), aead::Aad::from(ad), body).map_err(|_| ())?;
    let mut t = [0u8; TAG];
    t.copy_from_slice(tag.as_ref());
    Ok(t)
}

/// Opens `body` (ciphertext ‖ tag) in place: the stored form is then its first len − 16 bytes.
fn open_body(chunk_key: &[u8; 32], prefix: &[u8], ad: &[u8], body: &mut [u8]) -> bool {
    if crate::gcm::available() {
        return open_with(&chunk_seal_key_bytes(chunk_key, prefix), ad, body);
    }
    chunk_seal_key(chunk_key, prefix).open_in_place(zero_nonce(), aead::Aad::from(ad), body).is_ok()
}

/// A sealed metadata object's body (src/crypto/crypt-backend.ts, sealObject; docs/encryption.md,
/// "Objects"): AES-256-GCM under HKDF-SHA256(ikm = object key, salt, info), the zero nonce, AD
/// as given. Returns ciphertext ‖ tag. ON-DISK: the same bytes as node:crypto's path there.
pub fn seal_object(object_key: &[u8], salt: &[u8], info: &[u8], ad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + TAG);
    out.extend_from_slice(plain);
    let tag = seal_with(&hkdf32(object_key, salt, info), ad, &mut out);
    out.extend_from_slice(&tag);
    out
}

/// Opens seal_object's output: the plaintext, or None when it does not authenticate.
pub fn open_object(object_key: &[u8], salt: &[u8], info: &[u8], ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let mut body = sealed.to_vec();
    if !open_with(&hkdf32(object_key, salt, info), ad, &mut body) {
        return None;
    }
    body.truncate(body.len() - TAG);
    Some(body)
}

fn zero_nonce() -> aead::Nonce {
    aead::Nonce::assume_unique_for_key([0u8; 12])
}

fn aad(fingerprint: &[u8], codec: u8, raw_length: u32) -> [u8; 37] {
    let mut ad = [0u8; 37];
    ad[..32].copy_from_slice(fingerprint);
    ad[32] = codec;
    ad[33..].copy_from_slice(&raw_length.to_le_bytes());
    ad
}

/// Compresses (codec CODEC_LZ4 or CODEC_ZSTD at `level`; CODEC_NONE: not at all) and seals the
/// pieces `(offset, length)` of `data`, each alone under a key of its own (prefixes from a
/// fresh random batch `salt` from the caller and the piece's index), back to back into `out`.
/// Each stored form is written straight into its place in `out` (after its prefix) and
/// encrypted there:
/// no intermediate copy. A chunk whose compressed form would not be smaller is stored raw
/// (codec 0). Returns the sealed length and codec of every piece.
///
/// `out` must hold the sum of the piece lengths plus OVERHEAD per piece (the worst case).
pub fn seal_into(codec: u8, data: &[u8], pieces: &[(usize, usize)], fingerprints: &[u8], chunk_key: &[u8; 32], salt: &[u8; 16], out: &mut [u8], level: i32) -> Result<(Vec<u32>, Vec<u8>), String> {
    if fingerprints.len() != pieces.len() * 32 {
        return Err(format!("fingerprints has {} bytes, expected {}", fingerprints.len(), pieces.len() * 32));
    }
    if pieces.len() > u32::MAX as usize {
        return Err("too many chunks for one salt".into());
    }
    let need: usize = pieces.iter().map(|&(_, l)| l + OVERHEAD).sum();
    if out.len() < need {
        return Err(format!("out has {} bytes, needs {need}", out.len()));
    }
    let mut lengths = Vec::with_capacity(pieces.len());
    let mut codecs = Vec::with_capacity(pieces.len());
    let mut pos = 0usize;
    for (i, &(off, len)) in pieces.iter().enumerate() {
        let raw = data.get(off..off.checked_add(len).ok_or("piece offset overflows")?).ok_or_else(|| format!("piece {i} ({off}+{len}) runs past data ({})", data.len()))?;
        if len > u32::MAX as usize {
            return Err(format!("piece {i} is too long"));
        }
        let body = pos + PREFIX;
        // Room for the stored form: at most the raw length (else it is stored raw).
        let written = if codec == CODEC_NONE { 0 } else { compress_one(codec, raw, &mut out[body..body + len], level)? };
        let (m, c) = if written > 0 {
            (written, codec)
        } else {
            out[body..body + len].copy_from_slice(raw);
            (len, CODEC_NONE)
        };
        let prefix = chunk_prefix(salt, i as u32);
        out[pos..body].copy_from_slice(&prefix);
        let ad = aad(&fingerprints[i * 32..i * 32 + 32], c, len as u32);
        let tag = seal_body(chunk_key, &prefix, &ad, &mut out[body..body + m]).map_err(|_| format!("sealing piece {i} failed"))?;
        out[body + m..body + m + TAG].copy_from_slice(&tag);
        let sealed = m + OVERHEAD;
        lengths.push(sealed as u32);
        codecs.push(c);
        pos += sealed;
    }
    Ok((lengths, codecs))
}

/// Opens sealed piece `i` in place: its stored form is left at `[offset + 20, offset +
/// sealedLength - 16)` of `data`. Err when it fails authentication.
fn open_one(i: usize, data: &mut [u8], p: &Piece, fingerprints: &[u8], chunk_key: &[u8; 32]) -> Result<(), (usize, String)> {
    let end = match p.offset.checked_add(p.stored_length) {
        Some(end) if end <= data.len() => end,
        _ => return Err((i, "stored bytes run past the end of the read".into())),
    };
    if p.stored_length < OVERHEAD || p.raw_length > u32::MAX as usize {
        return Err((i, "sealed chunk is shorter than its prefix and tag".into()));
    }
    let sealed = &mut data[p.offset..end];
    let (head, body) = sealed.split_at_mut(PREFIX);
    let ad = aad(&fingerprints[i * 32..i * 32 + 32], p.codec, p.raw_length as u32);
    if open_body(chunk_key, head, &ad, body) {
        Ok(())
    } else {
        Err((i, "sealed chunk fails authentication: damaged, moved under another fingerprint, or not sealed with this store's key".into()))
    }
}

/// The stored form of an opened piece, as a piece of `data`.
fn inner(p: &Piece) -> Piece {
    Piece { offset: p.offset + PREFIX, stored_length: p.stored_length - OVERHEAD, raw_length: p.raw_length, codec: p.codec }
}

/// Opens the sealed pieces of one read in place (`data` is the read, overwritten): each
/// stored form is then at offset + 20, stored length − 36. A stored chunk named twice (the
/// same offset) is opened once. Err((index, reason)) names the first piece that fails.
pub fn open_many(data: &mut [u8], pieces: &[Piece], fingerprints: &[u8], chunk_key: &[u8; 32]) -> Result<(), (usize, String)> {
    let mut opened = std::collections::HashSet::new();
    for (i, p) in pieces.iter().enumerate() {
        if opened.insert(p.offset) {
            open_one(i, data, p, fingerprints, chunk_key)?;
        }
    }
    Ok(())
}

/// codec::decode_scatter for sealed pieces, in one pass per chunk: open (in place in `data`),
/// decode into its place in `out`, check the keyed fingerprint.
///
/// SAFETY: as codec::decode_scatter; `data` is this call's to overwrite.
pub unsafe fn open_scatter(data: &mut [u8], pieces: &[Piece], dests: &[usize], fingerprints: &[u8], fingerprint_key: Option<&[u8; 32]>, chunk_key: &[u8; 32], out: *mut u8, out_len: usize) -> Result<(), (usize, String)> {
    open_scatter_out(data, pieces, dests, fingerprints, fingerprint_key, chunk_key, out, out_len, None)
}

/// open_scatter with codec::decode_scatter_out's direct pieces: those are opened, decoded
/// into a per-thread scratch buffer, checked, and only then written to `output`.
///
/// SAFETY: as codec::decode_scatter_out; `data` is this call's to overwrite.
pub unsafe fn open_scatter_out(data: &mut [u8], pieces: &[Piece], dests: &[usize], fingerprints: &[u8], fingerprint_key: Option<&[u8; 32]>, chunk_key: &[u8; 32], out: *mut u8, out_len: usize, output: Option<(&FileOut, &[u8])>) -> Result<(), (usize, String)> {
    let mut opened = std::collections::HashSet::new();
    scatter_with(pieces, dests, out, out_len, output, |i, p, dst| {
        if opened.insert(p.offset) {
            open_one(i, data, p, fingerprints, chunk_key)?;
        }
        let q = inner(p);
        let stored = stored_of(i, data, &q)?;
        if q.codec == CODEC_NONE {
            dst.copy_from_slice(raw_of(i, &q, stored)?);
        } else {
            decompress_into(i, &q, stored, dst)?;
        }
        check_fingerprint(i, fingerprint_key, dst, fingerprints)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CODEC_LZ4, CODEC_ZSTD};

    fn sample() -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut data = vec![0u8; 0];
        let mut pieces = vec![];
        let mut x = 7u32;
        for (i, len) in [5000usize, 1, 0, 70000, 3000].iter().enumerate() {
            pieces.push((data.len(), *len));
            for j in 0..*len {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                // Half the pieces compressible, half noise.
                data.push(if i % 2 == 0 { (j % 17) as u8 } else { (x >> 16) as u8 });
            }
        }
        (data, pieces)
    }

    /// ring alone (its HKDF and AES-GCM), as a reference for seal_object.
    fn ring_seal_object(object_key: &[u8], salt: &[u8], info: &[u8], ad: &[u8], plain: &[u8]) -> Vec<u8> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(object_key);
        let info_parts = [info];
        let okm = prk.expand(&info_parts, &aead::AES_256_GCM).unwrap();
        let key = aead::LessSafeKey::new(aead::UnboundKey::from(okm));
        let mut body = plain.to_vec();
        let tag = key.seal_in_place_separate_tag(zero_nonce(), aead::Aad::from(ad), &mut body).unwrap();
        body.extend_from_slice(tag.as_ref());
        body
    }

    #[test]
    fn hkdf32_equals_ring_for_every_shape() {
        struct Len32;
        impl hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        // Short shapes take hkdf.rs (where the CPU allows), long ones ring: the same bytes.
        for (ikm_len, salt_len, info_len) in [(32, 0, 19), (32, 16, 24), (55, 64, 54), (56, 16, 24), (32, 65, 24), (32, 16, 55), (32, 0, 200), (0, 0, 0)] {
            let ikm: Vec<u8> = (0..ikm_len).map(|i| (i * 7 + 1) as u8).collect();
            let salt: Vec<u8> = (0..salt_len).map(|i| (i * 3 + 2) as u8).collect();
            let info: Vec<u8> = (0..info_len).map(|i| (i * 5 + 3) as u8).collect();
            let mut want = [0u8; 32];
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&ikm);
            let info_parts = [&info[..]];
            prk.expand(&info_parts, Len32).unwrap().fill(&mut want).unwrap();
            assert_eq!(hkdf32(&ikm, &salt, &info), want, "{ikm_len} {salt_len} {info_len}");
        }
    }

    #[test]
    fn sealed_objects_equal_ring_and_refuse_any_change() {
        let object_key = [0x5au8; 32];
        let info = b"chunkyard object seal v1";
        for len in [0usize, 1, 15, 16, 17, 600, 4096, 70_001] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let salt = [len as u8; 16];
            let ad = b"CYSEALEDsnapshots/0123456789abcdef.json";
            let sealed = seal_object(&object_key, &salt, info, ad, &plain);
            assert_eq!(sealed, ring_seal_object(&object_key, &salt, info, ad, &plain), "len {len}");
            assert_eq!(open_object(&object_key, &salt, info, ad, &sealed).as_deref(), Some(&plain[..]));
            // Another name (AD), salt, key or info; a flipped bit anywhere; a short body: refused.
            assert!(open_object(&object_key, &salt, info, b"CYSEALEDsnapshots/other.json", &sealed).is_none());
            assert!(open_object(&object_key, &[0xeeu8; 16], info, ad, &sealed).is_none());
            assert!(open_object(&[0x5bu8; 32], &salt, info, ad, &sealed).is_none());
            assert!(open_object(&object_key, &salt, b"chunkyard object seal v2", ad, &sealed).is_none());
            for bit in [0usize, sealed.len() * 8 / 2, sealed.len() * 8 - 1] {
                let mut bad = sealed.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(open_object(&object_key, &salt, info, ad, &bad).is_none(), "len {len} bit {bit}");
            }
            assert!(open_object(&object_key, &salt, info, ad, &sealed[..sealed.len() - 1]).is_none());
        }
        assert!(open_object(&object_key, &[0u8; 16], info, b"", &[0u8; 15]).is_none());
    }

    #[test]
    fn seal_then_open_round_trips_and_detects_tampering() {
        let (data, pieces) = sample();
        let key = [9u8; 32];
        let fkey = [3u8; 32];
        let mut fps = vec![];
        for &(o, l) in &pieces {
            fps.extend_from_slice(crate::chunker::fingerprint(Some(&fkey), &data[o..o + l]).as_bytes());
        }
        for codec in [CODEC_NONE, CODEC_LZ4, CODEC_ZSTD] {
            let need: usize = pieces.iter().map(|&(_, l)| l + OVERHEAD).sum();
            let mut out = vec![0u8; need];
            let (lens, codecs) = seal_into(codec, &data, &pieces, &fps, &key, &[5u8; 16], &mut out, 3).unwrap();
            let mut qs = vec![];
            let mut dests = vec![];
            let (mut o, mut d) = (0usize, 0usize);
            for (i, &(_, l)) in pieces.iter().enumerate() {
                qs.push(Piece { offset: o, stored_length: lens[i] as usize, raw_length: l, codec: codecs[i] });
                dests.push(d);
                o += lens[i] as usize;
                d += l;
            }
            // Every chunk's prefix differs: nothing repeats where chunks begin.
            let prefixes: std::collections::HashSet<&[u8]> = qs.iter().map(|q| &out[q.offset..q.offset + PREFIX]).collect();
            assert_eq!(prefixes.len(), qs.len());
            // Every chunk opens with ring's AES-GCM too (the fast path, where it ran, wrote the same bytes).
            for (i, q) in qs.iter().enumerate() {
                let mut copy = out[q.offset..q.offset + q.stored_length].to_vec();
                let (head, body) = copy.split_at_mut(PREFIX);
                let ad = aad(&fps[i * 32..i * 32 + 32], q.codec, q.raw_length as u32);
                chunk_seal_key(&key, head).open_in_place(zero_nonce(), aead::Aad::from(&ad[..]), body).expect("ring opens what seal_into sealed");
            }
            let mut sealed = out[..o].to_vec();
            let mut back = vec![0u8; data.len()];
            unsafe { open_scatter(&mut sealed, &qs, &dests, &fps, Some(&fkey), &key, back.as_mut_ptr(), back.len()) }.unwrap();
            assert_eq!(back, data);
            // A flipped byte in the ciphertext of piece 3, or a wrong fingerprint: refused.
            let mut bad = out[..o].to_vec();
            bad[qs[3].offset + 30] ^= 1;
            assert_eq!(open_many(&mut bad, &qs, &fps, &key).unwrap_err().0, 3);
            let mut swapped = fps.clone();
            swapped.swap(0, 32);
            let mut again = out[..o].to_vec();
            assert_eq!(open_many(&mut again, &qs, &swapped, &key).unwrap_err().0, 0);
        }
    }
}
