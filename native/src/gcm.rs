//! AES-256-GCM (NIST SP 800-38D) with VAES and VPCLMULQDQ on 512-bit vectors, for the sealed
//! chunks of encrypted stores (seal.rs): the same bytes as ring's AES-256-GCM, which stays the
//! path on CPUs without these instructions (and is what the tests compare against, on random
//! keys, nonces, associated data and every length up to a few blocks past each unrolled step).
//!
//! Why: every byte an encrypted store stores or restores passes through AES-GCM once. ring 0.16
//! (Debian's) has AES-NI code for 128-bit registers, six blocks at a time (~0.9 cycles a byte
//! here, as OpenSSL 3.0's `speed -evp aes-256-gcm`); this does sixteen blocks per step in four
//! 512-bit registers and hashes them with one reduction. Nothing else differs: the key schedule,
//! the counter blocks (nonce ‖ 32-bit big-endian counter from 2), GHASH over the associated
//! data, the ciphertext and the lengths, the tag E(K, J0) ⊕ GHASH.
//!
//! GHASH, as computed here. A 16-byte block is loaded byte-reversed, so that the coefficient of
//! x^i of the GCM field element is bit 127 − i of the register ("reflected"). A carry-less
//! product of two reflected values, taken as a 256-bit register V whose bit b is the
//! coefficient of x^(255 − b), is x·a·b. `reduce` folds V's two low 64-bit words (degrees
//! 192–255, then 128–191) into the high ones with x^128 ≡ x^7 + x^2 + x + 1: a word w at
//! degree 128 + d contributes w (at degree d) plus w·(x + x^2 + x^7), which one carry-less
//! multiply of w by 0xC2 << 56 (bits for 1, x, x^6, reflected; the product carries the
//! extra factor x) gives in place. So reduce(a ⊗ b) = x·a·b mod g, and the hash key is kept
//! as H·x^(-1) (`twist`): multiplying by it gives X·H. Powers H^k·x^(-1) for k = 1..16 let
//! sixteen blocks be multiplied and summed before one reduction.
//!
//! Constant time: no branch or memory index depends on the key, the data or the tag (AES
//! rounds are instructions; the tag is compared with an OR of XORs).

#![allow(clippy::missing_safety_doc)]

/// Whether this CPU has what the fast path needs (checked once).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::env::var_os("CHUNKYARD_GCM_RING").is_none()
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("vaes")
                && std::is_x86_feature_detected!("vpclmulqdq")
                && std::is_x86_feature_detected!("aes")
                && std::is_x86_feature_detected!("pclmulqdq")
                && std::is_x86_feature_detected!("sse4.1")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Encrypts `data` in place under `key` and `nonce` with associated data `ad`; returns the tag.
/// Panics unless `available()`.
pub fn seal_in_place(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], data: &mut [u8]) -> [u8; 16] {
    assert!(available(), "gcm::seal_in_place without VAES/VPCLMULQDQ");
    #[cfg(target_arch = "x86_64")]
    unsafe {
        imp::crypt::<true>(key, nonce, ad, data)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!()
}

/// Checks `tag` over `data` (the ciphertext) and `ad`, and decrypts `data` in place. On a tag
/// that does not match: false, and `data` is zeroed (no unauthenticated plaintext is left).
/// Panics unless `available()`.
pub fn open_in_place(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
    assert!(available(), "gcm::open_in_place without VAES/VPCLMULQDQ");
    #[cfg(target_arch = "x86_64")]
    {
        let computed = unsafe { imp::crypt::<false>(key, nonce, ad, data) };
        let mut diff = 0u8;
        for i in 0..16 {
            diff |= computed[i] ^ tag[i];
        }
        if diff != 0 {
            data.fill(0);
            return false;
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!()
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::x86_64::*;

    /// The reduction constant: 1 + x + x^6, reflected in a 64-bit word (bits 63, 62, 57).
    const POLY: i64 = 0xC200_0000_0000_0000u64 as i64;

    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn spread(x: __m128i) -> __m128i {
        // Prefix XOR of the four words: w0, w0^w1, w0^w1^w2, w0^w1^w2^w3.
        let y = _mm_xor_si128(x, _mm_slli_si128(x, 4));
        _mm_xor_si128(y, _mm_slli_si128(y, 8))
    }

    /// The AES-256 key schedule (FIPS 197, 5.2), with AESKEYGENASSIST.
    #[target_feature(enable = "aes,sse2")]
    unsafe fn expand(key: &[u8; 32]) -> [__m128i; 15] {
        let mut rk = [_mm_setzero_si128(); 15];
        rk[0] = _mm_loadu_si128(key.as_ptr() as *const __m128i);
        rk[1] = _mm_loadu_si128(key.as_ptr().add(16) as *const __m128i);
        macro_rules! even {
            ($i:expr, $rcon:expr) => {{
                let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[$i - 1], $rcon), 0xff);
                rk[$i] = _mm_xor_si128(spread(rk[$i - 2]), t);
            }};
        }
        macro_rules! odd {
            ($i:expr) => {{
                let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[$i - 1], 0), 0xaa);
                rk[$i] = _mm_xor_si128(spread(rk[$i - 2]), t);
            }};
        }
        even!(2, 0x01);
        odd!(3);
        even!(4, 0x02);
        odd!(5);
        even!(6, 0x04);
        odd!(7);
        even!(8, 0x08);
        odd!(9);
        even!(10, 0x10);
        odd!(11);
        even!(12, 0x20);
        odd!(13);
        even!(14, 0x40);
        rk
    }

    #[inline]
    #[target_feature(enable = "aes,sse2")]
    unsafe fn encrypt1(rk: &[__m128i; 15], block: __m128i) -> __m128i {
        let mut x = _mm_xor_si128(block, rk[0]);
        for r in &rk[1..14] {
            x = _mm_aesenc_si128(x, *r);
        }
        _mm_aesenclast_si128(x, rk[14])
    }

    #[inline]
    #[target_feature(enable = "ssse3")]
    unsafe fn bswap(x: __m128i) -> __m128i {
        _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
    }

    /// x·a·b mod g of the 256-bit product given as lo, mid (the cross terms), hi.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2")]
    unsafe fn reduce(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
        // V = [V3:V2:V1:V0]: low = [V1:V0], high = [V3:V2].
        let mut low = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
        let mut high = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
        let poly = _mm_set_epi64x(0, POLY);
        // V0 (degrees 192..255): V0 itself into V2, V0·(x + x^2 + x^7) into [V2:V1].
        let z0 = _mm_clmulepi64_si128(low, poly, 0x00);
        high = _mm_xor_si128(high, _mm_move_epi64(low));
        low = _mm_xor_si128(low, _mm_slli_si128(z0, 8));
        high = _mm_xor_si128(high, _mm_srli_si128(z0, 8));
        // V1 (degrees 128..191): V1 into V3, V1·(x + x^2 + x^7) into [V3:V2].
        let z1 = _mm_clmulepi64_si128(low, poly, 0x01);
        high = _mm_xor_si128(high, _mm_unpackhi_epi64(_mm_setzero_si128(), low));
        _mm_xor_si128(high, z1)
    }

    /// a·b·x mod g (reflected): with b = H·x^(-1), a·H.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2")]
    unsafe fn mul(a: __m128i, b: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128(a, b, 0x00);
        let hi = _mm_clmulepi64_si128(a, b, 0x11);
        let mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10));
        reduce(lo, mid, hi)
    }

    /// H·x^(-1) mod g, reflected: a left shift by one, and x^(-1) ≡ x^127 + x^6 + x + 1 for the
    /// bit shifted out.
    #[inline]
    #[target_feature(enable = "sse4.1")]
    unsafe fn twist(h: __m128i) -> __m128i {
        let v = (_mm_extract_epi64(h, 1) as u64 as u128) << 64 | _mm_extract_epi64(h, 0) as u64 as u128;
        let carry = v >> 127;
        let t = (v << 1) ^ (0u128.wrapping_sub(carry) & 0xC200_0000_0000_0000_0000_0000_0000_0001);
        _mm_set_epi64x((t >> 64) as u64 as i64, t as u64 as i64)
    }

    /// One 16-byte (or shorter, zero-padded) block into the hash: (acc ⊕ X)·H.
    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    unsafe fn ghash_bytes(acc: __m128i, h1: __m128i, bytes: &[u8]) -> __m128i {
        let mut acc = acc;
        for block in bytes.chunks(16) {
            let mut b = [0u8; 16];
            b[..block.len()].copy_from_slice(block);
            let x = bswap(_mm_loadu_si128(b.as_ptr() as *const __m128i));
            acc = mul(_mm_xor_si128(acc, x), h1);
        }
        acc
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn fold_lanes(x: __m512i) -> __m128i {
        let y = _mm256_xor_si256(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64(x, 1));
        _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1))
    }

    /// Lane-wise products of four blocks by four key powers, summed into lo, mid, hi.
    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    unsafe fn mul4_acc(x: __m512i, p: __m512i, lo: &mut __m512i, mid: &mut __m512i, hi: &mut __m512i) {
        *lo = _mm512_xor_si512(*lo, _mm512_clmulepi64_epi128(x, p, 0x00));
        *hi = _mm512_xor_si512(*hi, _mm512_clmulepi64_epi128(x, p, 0x11));
        *mid = _mm512_xor_si512(*mid, _mm512_xor_si512(_mm512_clmulepi64_epi128(x, p, 0x01), _mm512_clmulepi64_epi128(x, p, 0x10)));
    }

    /// CTR encryption (ENC) or decryption of `data` in place and GHASH over `ad` and the
    /// ciphertext; returns the tag. The counter is the nonce ‖ 32-bit big-endian counter
    /// starting at 2 (1 is J0), wrapping as GCM's inc32.
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1,avx2,avx512f,avx512bw,avx512vl,vaes,vpclmulqdq")]
    pub unsafe fn crypt<const ENC: bool>(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let rk = expand(key);
        let mut n = [0u8; 16];
        n[..12].copy_from_slice(nonce);
        n[15] = 1;
        let j0 = _mm_loadu_si128(n.as_ptr() as *const __m128i);
        let ej0 = encrypt1(&rk, j0);
        let h = bswap(encrypt1(&rk, _mm_setzero_si128()));
        let h1 = twist(h);

        let mut acc = ghash_bytes(_mm_setzero_si128(), h1, ad);

        // The counter as a little-endian word in lane word 3 (the nonce in words 0-2);
        // CTR_SHUF turns it into the big-endian block.
        n[12..].copy_from_slice(&2u32.to_le_bytes());
        let base = _mm512_broadcast_i32x4(_mm_loadu_si128(n.as_ptr() as *const __m128i));
        let lane_steps = _mm512_set_epi32(3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0);
        let mut ctr = _mm512_add_epi32(base, lane_steps);
        let four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
        #[rustfmt::skip]
        let ctr_shuf = _mm512_broadcast_i32x4(_mm_set_epi8(12, 13, 14, 15, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
        let bswap4 = _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        let mut rkz = [_mm512_setzero_si512(); 15];
        for i in 0..15 {
            rkz[i] = _mm512_broadcast_i32x4(rk[i]);
        }

        let len = data.len();
        let p = data.as_mut_ptr();
        let mut off = 0usize;

        if len >= 256 {
            // Powers H^k·x^(-1), k = 1..16, as pw[0] = [H^16, H^15, H^14, H^13] (lane 0 first)
            // ... pw[3] = [H^4, H^3, H^2, H^1]: block j of a group of 16 is multiplied by H^(16-j).
            let h2 = mul(h1, h1);
            let h3 = mul(h2, h1);
            let h4 = mul(h2, h2);
            let mut p4 = _mm512_inserti32x4(_mm512_castsi128_si512(h4), h3, 1);
            p4 = _mm512_inserti32x4(p4, h2, 2);
            p4 = _mm512_inserti32x4(p4, h1, 3);
            let h4z = _mm512_broadcast_i32x4(h4);
            let mut pw = [p4; 4];
            for k in (0..3).rev() {
                let (mut lo, mut mid, mut hi) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
                mul4_acc(pw[k + 1], h4z, &mut lo, &mut mid, &mut hi);
                pw[k] = reduce4(lo, mid, hi);
            }

            while len - off >= 256 {
                let mut x = [_mm512_setzero_si512(); 4];
                for k in 0..4 {
                    x[k] = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, ctr_shuf), rkz[0]);
                    ctr = _mm512_add_epi32(ctr, four);
                }
                for r in 1..14 {
                    for k in 0..4 {
                        x[k] = _mm512_aesenc_epi128(x[k], rkz[r]);
                    }
                }
                let (mut lo, mut mid, mut hi) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
                for k in 0..4 {
                    let q = p.add(off + 64 * k);
                    let d = _mm512_loadu_si512(q as *const _);
                    let o = _mm512_xor_si512(d, _mm512_aesenclast_epi128(x[k], rkz[14]));
                    _mm512_storeu_si512(q as *mut _, o);
                    let mut c = _mm512_shuffle_epi8(if ENC { o } else { d }, bswap4);
                    if k == 0 {
                        c = _mm512_xor_si512(c, _mm512_zextsi128_si512(acc));
                    }
                    mul4_acc(c, pw[k], &mut lo, &mut mid, &mut hi);
                }
                acc = reduce(fold_lanes(lo), fold_lanes(mid), fold_lanes(hi));
                off += 256;
            }
        }

        // The rest (under 256 bytes): 64 at a time, the last part masked; hashed block by block.
        while off < len {
            let take = (len - off).min(64);
            let mask: u64 = if take == 64 { !0 } else { (1u64 << take) - 1 };
            let mut x = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, ctr_shuf), rkz[0]);
            ctr = _mm512_add_epi32(ctr, four);
            for r in 1..14 {
                x = _mm512_aesenc_epi128(x, rkz[r]);
            }
            x = _mm512_aesenclast_epi128(x, rkz[14]);
            let q = p.add(off);
            let d = _mm512_maskz_loadu_epi8(mask, q as *const _);
            let o = _mm512_maskz_mov_epi8(mask, _mm512_xor_si512(d, x));
            _mm512_mask_storeu_epi8(q as *mut _, mask, o);
            let mut c = [0u8; 64];
            _mm512_storeu_si512(c.as_mut_ptr() as *mut _, if ENC { o } else { d });
            acc = ghash_bytes(acc, h1, &c[..take]);
            off += take;
        }

        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&((ad.len() as u64) * 8).to_be_bytes());
        lens[8..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
        acc = ghash_bytes(acc, h1, &lens);
        let tag = _mm_xor_si128(bswap(acc), ej0);
        let mut out = [0u8; 16];
        _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, tag);
        out
    }

    /// reduce() in each of four lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    unsafe fn reduce4(lo: __m512i, mid: __m512i, hi: __m512i) -> __m512i {
        let mut low = _mm512_xor_si512(lo, _mm512_bslli_epi128(mid, 8));
        let mut high = _mm512_xor_si512(hi, _mm512_bsrli_epi128(mid, 8));
        let poly = _mm512_broadcast_i32x4(_mm_set_epi64x(0, POLY));
        let z0 = _mm512_clmulepi64_epi128(low, poly, 0x00);
        high = _mm512_xor_si512(high, _mm512_unpacklo_epi64(low, _mm512_setzero_si512()));
        low = _mm512_xor_si512(low, _mm512_bslli_epi128(z0, 8));
        high = _mm512_xor_si512(high, _mm512_bsrli_epi128(z0, 8));
        let z1 = _mm512_clmulepi64_epi128(low, poly, 0x01);
        high = _mm512_xor_si512(high, _mm512_unpackhi_epi64(_mm512_setzero_si512(), low));
        _mm512_xor_si512(high, z1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead;

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }
    fn bytes(seed: &mut u64, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng(seed) as u8).collect()
    }

    fn ring_seal(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let k = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, key).unwrap());
        let tag = k.seal_in_place_separate_tag(aead::Nonce::assume_unique_for_key(*nonce), aead::Aad::from(ad), data).unwrap();
        tag.as_ref().try_into().unwrap()
    }

    #[test]
    fn nist_vector() {
        // The SP 800-38D / McGrew-Viega test case 14: AES-256, zero key, zero nonce, one zero block.
        if !available() {
            return;
        }
        let key = [0u8; 32];
        let mut data = [0u8; 16];
        let tag = seal_in_place(&key, &[0u8; 12], &[], &mut data);
        assert_eq!(data.to_vec(), hex("cea7403d4d606b6e074ec5d3baf39d18"));
        assert_eq!(tag.to_vec(), hex("d0d1c8a799996bf0265b98b5d48ab919"));
        let mut empty: [u8; 0] = [];
        assert_eq!(seal_in_place(&key, &[0u8; 12], &[], &mut empty).to_vec(), hex("530f8afbc74536b9a963b4f1c4cb738b"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn same_bytes_as_ring_at_every_length() {
        if !available() {
            eprintln!("gcm: no VAES/VPCLMULQDQ here; the fast path is not tested");
            return;
        }
        let mut seed = 0x9e3779b97f4a7c15u64;
        let lengths: Vec<usize> = (0..=600).chain([1023, 1024, 1025, 4096, 4097, 65535, 65536, 65536 + 37, 300_001]).collect();
        for len in lengths {
            for adlen in [0usize, 1, 16, 37, 64, 100] {
                let key: [u8; 32] = bytes(&mut seed, 32).try_into().unwrap();
                let nonce: [u8; 12] = if len % 3 == 0 { [0u8; 12] } else { bytes(&mut seed, 12).try_into().unwrap() };
                let ad = bytes(&mut seed, adlen);
                let plain = bytes(&mut seed, len);
                let mut a = plain.clone();
                let mut b = plain.clone();
                let ta = seal_in_place(&key, &nonce, &ad, &mut a);
                let tb = ring_seal(&key, &nonce, &ad, &mut b);
                assert_eq!(a, b, "ciphertext differs at length {len}, ad {adlen}");
                assert_eq!(ta, tb, "tag differs at length {len}, ad {adlen}");
                let mut c = a.clone();
                assert!(open_in_place(&key, &nonce, &ad, &mut c, &ta));
                assert_eq!(c, plain);
                if len > 0 {
                    // A flipped bit anywhere in the ciphertext, the tag or the AD: refused, zeroed.
                    let mut d = a.clone();
                    let at = (rng(&mut seed) as usize) % len;
                    d[at] ^= 1 << (rng(&mut seed) % 8);
                    assert!(!open_in_place(&key, &nonce, &ad, &mut d, &ta));
                    assert!(d.iter().all(|&x| x == 0));
                }
                let mut t = ta;
                t[(len + adlen) % 16] ^= 0x80;
                assert!(!open_in_place(&key, &nonce, &ad, &mut a.clone(), &t));
                if adlen > 0 {
                    let mut ad2 = ad.clone();
                    ad2[len % adlen] ^= 4;
                    assert!(!open_in_place(&key, &nonce, &ad2, &mut a.clone(), &ta));
                }
            }
        }
    }

    #[test]
    fn counter_wraps_as_inc32() {
        // A nonce is 12 bytes, so the counter starts at 2 and would wrap only past 2^32 blocks;
        // ring agrees on long inputs that cross 2^8 and 2^16 blocks.
        if !available() {
            return;
        }
        let mut seed = 7u64;
        for len in [256 * 16 + 5, 65536 * 16 + 77] {
            let key: [u8; 32] = bytes(&mut seed, 32).try_into().unwrap();
            let plain = bytes(&mut seed, len);
            let (mut a, mut b) = (plain.clone(), plain);
            assert_eq!(seal_in_place(&key, &[1u8; 12], b"ad", &mut a), ring_seal(&key, &[1u8; 12], b"ad", &mut b));
            assert_eq!(a, b);
        }
    }
}
