//! The gear-hash search for the first cut candidate in a run of bytes that all use one mask
//! (docs/chunking.md, "Cut points"). The chunker splits a chunk into its strict and loose
//! regions and calls `scan` once per region, so the mask is a loop constant here.

use crate::gear::GEAR;

/// Result of rolling the gear hash over a run of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// `(h & mask) == 0` after the byte at this index: the chunk ends after it.
    Hit(usize),
    /// No hit in the run; the hash after its last byte.
    Miss(u64),
}

/// A gear table: the default one (gear.rs) or a keyed one (an encrypted store's, derived from
/// its gear key by the TypeScript side, docs/encryption.md).
pub type Gear = [u64; 256];

/// The one-byte loop exactly as written in the spec. The definition the fast path is
/// tested against; not used on the data path.
pub fn scan_reference(h: u64, data: &[u8], mask: u64) -> Scan {
    scan_reference_with(&GEAR, h, data, mask)
}

/// `scan_reference` with the gear table `gear`.
pub fn scan_reference_with(gear: &Gear, mut h: u64, data: &[u8], mask: u64) -> Scan {
    let g = |b: u8| gear[b as usize];
    for (i, &b) in data.iter().enumerate() {
        h = (h << 1).wrapping_add(g(b));
        if h & mask == 0 {
            return Scan::Hit(i);
        }
    }
    Scan::Miss(h)
}

/// Four bytes per step. The hash after byte k of a step is `(h << k) + S_k` with
/// `S_k = 2 * S_{k-1} + G[b_k]`, which depends only on the step's own bytes. So the hash
/// carried to the next step costs one shift and one add per four bytes instead of four
/// dependent shift-adds, and the three intermediate hashes are tested off that chain.
///
/// Measured on the project's 2-core Zen 5 (scanbench example, 256 KiB runs, mask(18)):
/// one byte per step 2.1 GB/s, two per step (FastCDC 2020) 2.75, four 3.3-3.7, eight
/// 3.2, four byte-interleaved independent lanes 3.5. Four is the simplest of the fastest.
#[inline(always)]
pub fn scan(h: u64, data: &[u8], mask: u64) -> Scan {
    scan_with(&GEAR, h, data, mask)
}

/// `scan` with the gear table `gear`.
#[inline(always)]
pub fn scan_with(gear: &Gear, mut h: u64, data: &[u8], mask: u64) -> Scan {
    let g = |b: u8| gear[b as usize];
    let mut steps = data.chunks_exact(4);
    let mut base = 0usize;
    for p in &mut steps {
        let s1 = g(p[0]);
        let s2 = (s1 << 1).wrapping_add(g(p[1]));
        let s3 = (s2 << 1).wrapping_add(g(p[2]));
        let s4 = (s3 << 1).wrapping_add(g(p[3]));
        if (h << 1).wrapping_add(s1) & mask == 0 {
            return Scan::Hit(base);
        }
        if (h << 2).wrapping_add(s2) & mask == 0 {
            return Scan::Hit(base + 1);
        }
        if (h << 3).wrapping_add(s3) & mask == 0 {
            return Scan::Hit(base + 2);
        }
        let h4 = (h << 4).wrapping_add(s4);
        if h4 & mask == 0 {
            return Scan::Hit(base + 3);
        }
        h = h4;
        base += 4;
    }
    match scan_reference_with(gear, h, steps.remainder(), mask) {
        Scan::Hit(i) => Scan::Hit(base + i),
        miss => miss,
    }
}

/// The gear hash after 64 zero bytes, whatever it was before: each byte shifts one old bit
/// out, so 64 of them leave only `sum(G[0] << k, k = 0..64)` = `-G[0]` (mod 2^64), and every
/// further zero byte keeps it there (`2 * -G[0] + G[0] = -G[0]`).
pub const ZERO_RUN_HASH: u64 = GEAR[0].wrapping_neg();

/// ZERO_RUN_HASH of any gear table.
#[inline]
pub fn zero_run_hash(gear: &Gear) -> u64 {
    gear[0].wrapping_neg()
}

/// Bytes per zero test in `scan_zero_runs`: disk images hold their zeros in whole blocks of
/// 4 KiB and more, and a test of a block that is not zero stops at its first word.
pub const ZERO_BLOCK: usize = 4096;

/// True when every byte of `b` is zero. Word-wide, 64 bytes per test, so that it runs at
/// memory speed on zeros and stops within 64 bytes of anything else.
#[inline]
pub fn is_zero(b: &[u8]) -> bool {
    let mut lines = b.chunks_exact(64);
    for line in &mut lines {
        let mut acc = 0u64;
        for w in line.chunks_exact(8) {
            acc |= u64::from_ne_bytes(w.try_into().unwrap());
        }
        if acc != 0 {
            return false;
        }
    }
    lines.remainder().iter().all(|&x| x == 0)
}

/// `scan`, with the same result, but skipping over zero blocks instead of rolling the hash
/// through them: after the first 64 bytes of a zero block the hash is ZERO_RUN_HASH, and when
/// that misses the mask nothing in the rest of the block can hit. (When it hits, which only
/// the smallest masks do, the block's 65th byte would be a cut anyway: plain `scan`.)
/// Disk images are ~40% zeros; this is what makes those regions cost a memory read.
#[inline]
pub fn scan_zero_runs(h: u64, data: &[u8], mask: u64) -> Scan {
    scan_zero_runs_with(&GEAR, h, data, mask)
}

/// `scan_zero_runs` with the gear table `gear`.
#[inline]
pub fn scan_zero_runs_with(gear: &Gear, mut h: u64, data: &[u8], mask: u64) -> Scan {
    let zero_hash = zero_run_hash(gear);
    if zero_hash & mask == 0 || data.len() < 2 * ZERO_BLOCK {
        return scan_with(gear, h, data, mask);
    }
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + ZERO_BLOCK).min(data.len());
        let block = &data[pos..end];
        let rolled = if block.len() > 64 && is_zero(block) { &block[..64] } else { block };
        match scan_with(gear, h, rolled, mask) {
            Scan::Hit(i) => return Scan::Hit(pos + i),
            Scan::Miss(next) => h = next,
        }
        // A skipped rest leaves h as the first 64 bytes set it: ZERO_RUN_HASH.
        debug_assert!(rolled.len() == block.len() || h == zero_hash);
        pos = end;
    }
    Scan::Miss(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::mask;
    use crate::testutil::Rng;

    #[test]
    fn zero_run_hash_is_the_fixed_point() {
        let zeros = |h0: u64, n: usize| (0..n).fold(h0, |h, _| (h << 1).wrapping_add(GEAR[0]));
        for h0 in [0u64, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(zeros(h0, 64), ZERO_RUN_HASH);
            assert_eq!(zeros(h0, 1000), ZERO_RUN_HASH);
        }
        // 63 are not enough: the top bit of an all-ones hash is still there.
        assert_ne!(zeros(u64::MAX, 63), ZERO_RUN_HASH);
    }

    #[test]
    fn is_zero_sees_any_set_byte() {
        let mut v = vec![0u8; 3 * 64 + 13];
        assert!(is_zero(&v));
        for i in 0..v.len() {
            v[i] = 0x10;
            assert!(!is_zero(&v), "byte {i}");
            v[i] = 0;
        }
        assert!(is_zero(&[]));
    }

    #[test]
    fn skipping_zero_runs_equals_reference() {
        // Random bytes broken by zero runs of every length around the block size, at any
        // offset, for masks that the zero hash hits (k = 1, 2) and misses.
        // Half the runs end inside a zero run, where the hash they return is the skip's.
        let mut rng = Rng::new(8);
        let mut data = Vec::new();
        let mut runs = Vec::new();
        while data.len() < 4 << 20 {
            let run = match rng.below(4) {
                0 => 1 + rng.below(200),
                1 => ZERO_BLOCK - 70 + rng.below(140),
                2 => 2 * ZERO_BLOCK + rng.below(3 * ZERO_BLOCK),
                _ => rng.below(64 << 10),
            };
            runs.push((data.len(), data.len() + run));
            data.resize(data.len() + run, 0);
            let noise = 1 + rng.below(3000);
            data.extend(rng.bytes(noise));
        }
        for k in [1u32, 2, 3, 6, 8, 12, 16, 20] {
            let m = mask(k);
            for i in 0..600 {
                let (a, b) = if i % 2 == 0 {
                    let a = rng.below(data.len());
                    (a, a + rng.below((data.len() - a).min(300_000) + 1))
                } else {
                    let (start, end) = runs[rng.below(runs.len())];
                    let b = start + rng.below(end - start + 1);
                    (b.saturating_sub(rng.below(300_000)), b)
                };
                let h0 = if rng.below(2) == 0 { 0 } else { rng.next_u64() };
                assert_eq!(scan_zero_runs(h0, &data[a..b], m), scan_reference(h0, &data[a..b], m), "k = {k}, {a}..{b}");
            }
        }
    }

    #[test]
    fn unrolled_equals_reference() {
        let mut rng = Rng::new(7);
        let data = rng.bytes(1 << 20);
        for k in [1u32, 3, 6, 8, 12, 16] {
            let m = mask(k);
            for _ in 0..200 {
                let a = rng.below(data.len());
                let b = a + rng.below((data.len() - a).min(5000) + 1);
                let h0 = if rng.below(2) == 0 { 0 } else { rng.next_u64() };
                assert_eq!(scan(h0, &data[a..b], m), scan_reference(h0, &data[a..b], m));
            }
        }
    }

    #[test]
    fn keyed_tables_agree_with_reference() {
        let mut rng = Rng::new(99);
        let mut table = [0u64; 256];
        for t in table.iter_mut() {
            *t = rng.next_u64();
        }
        let mut data = vec![0u8; 300_000];
        for (i, b) in data.iter_mut().enumerate() {
            *b = if (i / 20_000) % 3 == 1 { 0 } else { rng.next_u64() as u8 };
        }
        for k in [6u32, 10, 14] {
            let m = mask(k);
            for (a, b) in [(0usize, 300_000usize), (17, 250_001), (40_000, 90_000)] {
                let r = scan_reference_with(&table, 5, &data[a..b], m);
                assert_eq!(scan_with(&table, 5, &data[a..b], m), r);
                assert_eq!(scan_zero_runs_with(&table, 5, &data[a..b], m), r);
            }
        }
        assert_eq!(zero_run_hash(&crate::gear::GEAR), ZERO_RUN_HASH);
        let mut h = 12345u64;
        for _ in 0..64 {
            h = (h << 1).wrapping_add(table[0]);
        }
        assert_eq!(h, zero_run_hash(&table));
    }
}
