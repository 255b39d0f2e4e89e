//! Several chunkers v1 over one stream in one pass (`chunkyard analyze` with a list of
//! average sizes, docs/analyze.md "Several sizes in one pass"). The results are exactly
//! those of one `Chunker` per size (tested below against it and against the reference
//! loop); what is shared is the gear hash.
//!
//! Why that is exact: the gear hash is `h = (h << 1) + GEAR[b]` over u64, so a byte's term
//! is shifted out after 64 more bytes. A chunker starts rolling at chunk index min_size
//! with h = 0, so from chunk index min_size + 63 on its hash is the sum over the last 64
//! bytes only, which is also what the hash rolled over the whole stream (`G`) is at that
//! position. So one pass over the data computes `G` and keeps the positions where
//! `G & F == 0`, F being the AND of every mask in use (masks are nested runs of one-bits
//! ending at bit 62, so F is the widest-spaced: a hit of any size's mask is a hit of F).
//! Each size then walks those candidates with its own state (chunk start, strict or loose
//! region, forced cut at max_size), and rolls its own hash only over the first 63
//! positions after min_size of each chunk (`LOCAL` below), where the chunk's hash still
//! differs from `G`.
//!
//! Threads: the candidate scan is split in two halves (the second one warms up on the 64
//! bytes before it: exact for the same reason) and the fingerprints of each size are
//! hashed in two halves by bytes, all on the rayon-core pool. Results never depend on it.
//!
//! Fingerprints: BLAKE3 (plain or keyed) as `Chunker`'s by default, or XXH3-128 with
//! `Fingerprint::Xxh3` (analyze, which only needs chunk equality, docs/analyze.md): then a
//! chunk's 32 bytes are the XXH3-128 digest in its canonical big-endian form (the bytes
//! `xxhsum -H2` prints) followed by 16 zero bytes. The cut points are the same either way.

use crate::chunker::{fingerprint, Batch, Threads, TWO_THREADS_MIN_SLICE};
use crate::gear::GEAR;
use crate::params::Params;
use crate::scan::{scan, Scan};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// What a chunk's 32 fingerprint bytes are (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingerprint {
    /// BLAKE3 of the chunk (keyed with the chunker's key if it has one).
    Blake3,
    /// XXH3-128 (seed 0, default secret) of the chunk, big-endian, then 16 zero bytes.
    Xxh3,
}

/// XXH3-128 digest as a chunk's 32 fingerprint bytes.
#[inline]
fn xxh3_bytes(d: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&d.to_be_bytes());
    out
}

/// The hash state of an open chunk's bytes from earlier slices. One per size, replaced at
/// most once a push: the variants' sizes (BLAKE3's ~1.9 KB) do not matter.
#[allow(clippy::large_enum_variant)]
enum Carry {
    Blake3(blake3::Hasher),
    Xxh3(Xxh3),
}

impl Carry {
    fn new(kind: Fingerprint, key: &Option<[u8; 32]>) -> Carry {
        match kind {
            Fingerprint::Blake3 => Carry::Blake3(new_hasher(key)),
            Fingerprint::Xxh3 => Carry::Xxh3(Xxh3::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Carry::Blake3(h) => {
                h.update(bytes);
            }
            Carry::Xxh3(h) => h.update(bytes),
        }
    }

    fn finalize(&self) -> [u8; 32] {
        match self {
            Carry::Blake3(h) => *h.finalize().as_bytes(),
            Carry::Xxh3(h) => xxh3_bytes(h.digest128()),
        }
    }

    fn reset(&mut self) {
        match self {
            Carry::Blake3(h) => {
                h.reset();
            }
            Carry::Xxh3(h) => h.reset(),
        }
    }
}

/// A whole chunk's fingerprint.
#[inline]
fn one_shot(kind: Fingerprint, key: Option<&[u8; 32]>, bytes: &[u8]) -> [u8; 32] {
    match kind {
        Fingerprint::Blake3 => *fingerprint(key, bytes).as_bytes(),
        Fingerprint::Xxh3 => xxh3_bytes(xxh3_128(bytes)),
    }
}

/// Positions after min_size where a chunk's own hash may still differ from the stream's.
const LOCAL: usize = 63;

#[inline(always)]
fn g(b: u8) -> u64 {
    GEAR[b as usize]
}

/// A candidate: offset of the byte in the pushed slice and the stream's gear hash after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cand {
    off: usize,
    h: u64,
}

/// Rolls the stream hash over `data` (whose first byte is at `base` in the slice) starting
/// from `h`, appending every position where `h & mask == 0`. Returns the hash after the
/// last byte. Four bytes per step, as `scan::scan`.
fn scan_run(mut h: u64, data: &[u8], base: usize, mask: u64, out: &mut Vec<Cand>) -> u64 {
    let mut steps = data.chunks_exact(4);
    let mut off = base;
    for p in &mut steps {
        step(&mut h, p, off, mask, out);
        off += 4;
    }
    for &b in steps.remainder() {
        h = (h << 1).wrapping_add(g(b));
        if h & mask == 0 {
            out.push(Cand { off, h });
        }
        off += 1;
    }
    h
}

/// Four bytes at `off`: the hash after byte k is `(h << (k + 1)) + S_k` with
/// `S_k = 2 * S_{k-1} + G[b_k]`, which depends only on the four bytes.
#[inline(always)]
fn step(h: &mut u64, p: &[u8], off: usize, mask: u64, out: &mut Vec<Cand>) {
    let s1 = g(p[0]);
    let s2 = (s1 << 1).wrapping_add(g(p[1]));
    let s3 = (s2 << 1).wrapping_add(g(p[2]));
    let s4 = (s3 << 1).wrapping_add(g(p[3]));
    let h1 = (*h << 1).wrapping_add(s1);
    let h2 = (*h << 2).wrapping_add(s2);
    let h3 = (*h << 3).wrapping_add(s3);
    let h4 = (*h << 4).wrapping_add(s4);
    // One branch per step in the common case (no hit among the four).
    if (h1 & mask == 0) | (h2 & mask == 0) | (h3 & mask == 0) | (h4 & mask == 0) {
        for (k, hk) in [h1, h2, h3, h4].into_iter().enumerate() {
            if hk & mask == 0 {
                out.push(Cand { off: off + k, h: hk });
            }
        }
    }
    *h = h4;
}

/// Independent runs the scan interleaves (see scan_all).
const LANES: usize = 4;

/// scan_run, but over LANES equal parts of `data` at once, interleaved step by step: each
/// run's hash chain is independent of the others, so the CPU overlaps them (measured on the
/// project's 2-vCPU Xeon: 1.55 GB/s for one run, 2.5 GB/s for four). A part after the first
/// starts from the hash of the 64 bytes before it, which is the stream's hash there exactly
/// (the gear forgets a byte after 64 more). Same result as scan_run.
fn scan_all(h: u64, data: &[u8], base: usize, mask: u64, out: &mut Vec<Cand>) -> u64 {
    let part = (data.len() / LANES) & !3;
    if part < 64 {
        return scan_run(h, data, base, mask, out);
    }
    let mut hs = [0u64; LANES];
    hs[0] = h;
    for (l, hl) in hs.iter_mut().enumerate().skip(1) {
        for &b in &data[l * part - 64..l * part] {
            *hl = (*hl << 1).wrapping_add(g(b));
        }
    }
    let mut outs: [Vec<Cand>; LANES] = Default::default();
    let lanes: [&[u8]; LANES] = std::array::from_fn(|l| &data[l * part..(l + 1) * part]);
    for s in (0..part).step_by(4) {
        for l in 0..LANES {
            step(&mut hs[l], &lanes[l][s..s + 4], base + l * part + s, mask, &mut outs[l]);
        }
    }
    for o in &outs {
        out.extend_from_slice(o);
    }
    scan_run(hs[LANES - 1], &data[LANES * part..], base + LANES * part, mask, out)
}

/// The state of one size: the open chunk and its fingerprint so far.
struct Size {
    params: Params,
    /// min(min_size + LOCAL, max_size): from here on the chunk's hash is the stream's.
    local_end: usize,
    /// Bytes of the open chunk seen so far (< max_size between pushes).
    open_len: usize,
    /// The chunk's own gear hash, meaningful while min_size <= open_len < local_end.
    h: u64,
    key: Option<[u8; 32]>,
    /// Hash state of the open chunk's bytes from earlier slices.
    carry: Carry,
}

fn new_hasher(key: &Option<[u8; 32]>) -> blake3::Hasher {
    match key {
        Some(k) => blake3::Hasher::new_keyed(k),
        None => blake3::Hasher::new(),
    }
}

impl Size {
    /// The ends (offsets into `data`, exclusive) of the chunks that end in `data`, given the
    /// stream's candidates in it (sorted by offset). Advances open_len and h.
    fn cuts(&mut self, data: &[u8], cands: &[Cand]) -> Vec<usize> {
        let p = self.params;
        let mut ends = Vec::new();
        let mut pos = 0usize;
        let mut ci = 0usize;
        'chunks: loop {
            // Phase A: the chunk's first local_end bytes, with its own hash.
            if self.open_len < self.local_end {
                if self.open_len < p.min_size {
                    let skip = (p.min_size - self.open_len).min(data.len() - pos);
                    self.open_len += skip;
                    pos += skip;
                    if self.open_len < p.min_size {
                        break;
                    }
                }
                // The strict mask up to avg_size, then the loose one (open_len >= avg_size).
                let strict_end = p.avg_size.min(self.local_end);
                for (to, mask) in [(strict_end, p.mask_s), (self.local_end, p.mask_l)] {
                    if self.open_len < to {
                        if let Some(end) = self.roll(data, &mut pos, to, mask) {
                            self.cut(end, &mut ends, &mut pos);
                            continue 'chunks;
                        }
                        if self.open_len < to {
                            break 'chunks;
                        }
                    }
                }
                if self.open_len == p.max_size {
                    self.cut(pos, &mut ends, &mut pos);
                    continue;
                }
            }
            // Phase B: local_end <= open_len < max_size; the stream's candidates decide.
            let limit = pos + (p.max_size - self.open_len);
            let stop = limit.min(data.len());
            while ci < cands.len() && cands[ci].off < pos {
                ci += 1;
            }
            while ci < cands.len() && cands[ci].off < stop {
                let c = cands[ci];
                ci += 1;
                let index = self.open_len + (c.off - pos);
                let mask = if index < p.avg_size { p.mask_s } else { p.mask_l };
                if c.h & mask == 0 {
                    self.cut(c.off + 1, &mut ends, &mut pos);
                    continue 'chunks;
                }
            }
            if limit <= data.len() {
                self.cut(limit, &mut ends, &mut pos);
                continue;
            }
            self.open_len += data.len() - pos;
            break;
        }
        ends
    }

    /// Rolls the chunk's own hash over `data` from `*pos` until chunk index `to` (or the
    /// data's end), testing `mask`: the end of the chunk (exclusive offset in `data`) at a
    /// hit, else None with open_len, pos and h advanced over what was rolled.
    #[inline(always)]
    fn roll(&mut self, data: &[u8], pos: &mut usize, to: usize, mask: u64) -> Option<usize> {
        let n = (to - self.open_len).min(data.len() - *pos);
        match scan(self.h, &data[*pos..*pos + n], mask) {
            Scan::Hit(i) => Some(*pos + i + 1),
            Scan::Miss(h) => {
                self.h = h;
                self.open_len += n;
                *pos += n;
                None
            }
        }
    }

    #[inline]
    fn cut(&mut self, end: usize, ends: &mut Vec<usize>, pos: &mut usize) {
        ends.push(end);
        *pos = end;
        self.open_len = 0;
        self.h = 0;
    }
}

/// Hashes chunks `[from, to)` of `ends` (chunk k spans ends[k-1]..ends[k], chunk 0 starts
/// at 0) into `out` (32 bytes per chunk, from chunk `from`). Chunk 0 continues `first` when
/// given; with `tail`, the bytes after the last end go into it.
#[allow(clippy::too_many_arguments)]
fn hash_range(
    kind: Fingerprint,
    key: Option<&[u8; 32]>,
    data: &[u8],
    ends: &[usize],
    from: usize,
    to: usize,
    first: Option<Carry>,
    tail: Option<&mut Carry>,
    out: &mut [u8],
) {
    let mut first = first;
    for k in from..to {
        let start = if k == 0 { 0 } else { ends[k - 1] };
        let piece = &data[start..ends[k]];
        let h = match (k, first.as_mut()) {
            (0, Some(c)) => {
                c.update(piece);
                c.finalize()
            }
            _ => one_shot(kind, key, piece),
        };
        out[32 * (k - from)..32 * (k - from) + 32].copy_from_slice(&h);
    }
    if let Some(t) = tail {
        let start = ends.last().copied().unwrap_or(0);
        if start < data.len() {
            t.update(&data[start..]);
        }
    }
}

/// One size's share of a push: its cuts and where its fingerprints go.
struct Job<'a> {
    kind: Fingerprint,
    key: Option<&'a [u8; 32]>,
    ends: &'a [usize],
    from: usize,
    to: usize,
    first: Option<Carry>,
    tail: Option<&'a mut Carry>,
    out: &'a mut [u8],
}

impl Job<'_> {
    fn run(self, data: &[u8]) {
        hash_range(self.kind, self.key, data, self.ends, self.from, self.to, self.first, self.tail, self.out);
    }
}

/// A chunker per size over one stream. Not thread-safe by itself (the N-API layer runs one
/// push at a time).
pub struct MultiChunker {
    sizes: Vec<Size>,
    /// The AND of every mask in use.
    filter: u64,
    /// The gear hash rolled over the whole stream so far.
    g: u64,
    kind: Fingerprint,
}

impl MultiChunker {
    /// One chunker per entry of `params` (any order, repeats allowed), all with `key`;
    /// BLAKE3 fingerprints.
    pub fn new(params: &[Params], key: Option<[u8; 32]>) -> MultiChunker {
        Self::with_fingerprint(params, key, Fingerprint::Blake3).expect("BLAKE3 takes any key")
    }

    /// The same with the given fingerprints. XXH3 takes no key (Err).
    pub fn with_fingerprint(params: &[Params], key: Option<[u8; 32]>, kind: Fingerprint) -> Result<MultiChunker, String> {
        if kind == Fingerprint::Xxh3 && key.is_some() {
            return Err("a key is only for BLAKE3 fingerprints: XXH3 fingerprints take none".to_string());
        }
        let mut filter = u64::MAX;
        let sizes = params
            .iter()
            .map(|&p| {
                filter &= p.mask_s & p.mask_l;
                Size {
                    params: p,
                    local_end: (p.min_size + LOCAL).min(p.max_size),
                    open_len: 0,
                    h: 0,
                    key,
                    carry: Carry::new(kind, &key),
                }
            })
            .collect();
        Ok(MultiChunker { sizes, filter, g: 0, kind })
    }

    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// Feeds the next slice; returns, per size in the order given, every chunk that ends in
    /// it (with `fin`, the open chunk too, and the chunker is ready for a new stream).
    pub fn push(&mut self, data: &[u8], fin: bool) -> Vec<Batch> {
        let threads = if data.len() >= TWO_THREADS_MIN_SLICE && available_cpus() >= 2 { Threads::Two } else { Threads::One };
        self.push_with(data, fin, threads)
    }

    pub fn push_with(&mut self, data: &[u8], fin: bool, threads: Threads) -> Vec<Batch> {
        let cands = self.candidates(data, threads);
        let firsts: Vec<usize> = self.sizes.iter().map(|s| s.open_len).collect();
        let all_ends: Vec<Vec<usize>> = self.sizes.iter_mut().map(|s| s.cuts(data, &cands)).collect();
        let mut outs: Vec<Vec<u8>> = all_ends.iter().map(|e| vec![0u8; 32 * e.len()]).collect();
        let mut jobs: Vec<Job> = Vec::new();
        let kind = self.kind;
        for ((size, ends), (out, &first_len)) in self.sizes.iter_mut().zip(&all_ends).zip(outs.iter_mut().zip(&firsts)) {
            let key = size.key.as_ref();
            let n = ends.len();
            if n == 0 {
                // Nothing ends here: the whole slice continues the open chunk.
                jobs.push(Job { kind, key, ends, from: 0, to: 0, first: None, tail: Some(&mut size.carry), out });
                continue;
            }
            // The open chunk from earlier slices is finished with the old state; bytes after
            // the last cut start a new one.
            let first = if first_len > 0 {
                Some(std::mem::replace(&mut size.carry, Carry::new(kind, &size.key)))
            } else {
                size.carry.reset();
                None
            };
            let split = match threads {
                Threads::Two if n >= 2 => {
                    let half = ends[n - 1] / 2;
                    ends.partition_point(|&e| e <= half).clamp(1, n - 1)
                }
                _ => n,
            };
            let (out_a, out_b) = out.split_at_mut(32 * split);
            if split == n {
                jobs.push(Job { kind, key, ends, from: 0, to: n, first, tail: Some(&mut size.carry), out: out_a });
            } else {
                jobs.push(Job { kind, key, ends, from: 0, to: split, first, tail: None, out: out_a });
                jobs.push(Job { kind, key, ends, from: split, to: n, first: None, tail: Some(&mut size.carry), out: out_b });
            }
        }
        match threads {
            Threads::One => jobs.into_iter().for_each(|j| j.run(data)),
            Threads::Two => rayon_core::scope(|s| {
                for j in jobs {
                    s.spawn(move |_| j.run(data));
                }
            }),
        }
        let mut batches: Vec<Batch> = Vec::with_capacity(self.sizes.len());
        for ((ends, hashes), &first_len) in all_ends.iter().zip(outs).zip(&firsts) {
            let mut lengths = Vec::with_capacity(ends.len());
            let mut prev = 0;
            for (k, &e) in ends.iter().enumerate() {
                let extra = if k == 0 { first_len } else { 0 };
                lengths.push((extra + e - prev) as u32);
                prev = e;
            }
            batches.push(Batch { lengths, hashes });
        }
        if fin {
            for (size, b) in self.sizes.iter_mut().zip(batches.iter_mut()) {
                if size.open_len > 0 {
                    let hash = size.carry.finalize();
                    b.lengths.push(size.open_len as u32);
                    b.hashes.extend_from_slice(&hash);
                }
                size.carry.reset();
                size.open_len = 0;
                size.h = 0;
            }
            self.g = 0;
        }
        batches
    }

    /// Drops the open chunks and starts a new stream.
    pub fn reset(&mut self) {
        for s in &mut self.sizes {
            s.carry.reset();
            s.open_len = 0;
            s.h = 0;
        }
        self.g = 0;
    }

    /// The stream's candidates in `data`, sorted; advances the stream hash.
    fn candidates(&mut self, data: &[u8], threads: Threads) -> Vec<Cand> {
        let mask = self.filter;
        let g0 = self.g;
        let mut out = Vec::with_capacity(data.len() / 2048 + 16);
        let mid = data.len() / 2;
        if threads == Threads::Two && mid >= 64 {
            let mut second = Vec::with_capacity(out.capacity() / 2 + 16);
            let (_, g_end) = rayon_core::join(
                || scan_all(g0, &data[..mid], 0, mask, &mut out),
                || {
                    // The 64 bytes before mid give the stream hash at mid exactly.
                    let mut h = 0u64;
                    for &b in &data[mid - 64..mid] {
                        h = (h << 1).wrapping_add(g(b));
                    }
                    scan_all(h, &data[mid..], mid, mask, &mut second)
                },
            );
            out.extend_from_slice(&second);
            self.g = g_end;
        } else {
            self.g = scan_all(g0, data, 0, mask, &mut out);
        }
        out
    }
}

/// For benches: the number of candidates in `data` for `mask`, from a zero hash.
#[doc(hidden)]
pub fn count_candidates(data: &[u8], mask: u64) -> usize {
    let mut out = Vec::new();
    scan_all(0, data, 0, mask, &mut out);
    out.len()
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::{reference_lengths, Chunker};
    use crate::params::MAX_NORMALIZATION;
    use crate::testutil::Rng;

    fn params(min: usize, avg: usize, max: usize, nc: u32) -> Params {
        Params::new(min, avg, max, nc).unwrap()
    }

    /// Data the gear can trip over: random runs, zero runs, short periodic patterns, repeats.
    fn mixed(rng: &mut Rng, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let run = 1 + rng.below(40_000);
            match rng.below(5) {
                0 => v.resize(v.len() + run, 0),
                1 if v.len() > run => {
                    let from = rng.below(v.len() - run);
                    v.extend_from_within(from..from + run);
                }
                2 => {
                    let period = 1 + rng.below(200);
                    let pat = rng.bytes(period);
                    v.extend(pat.iter().cycle().take(run));
                }
                _ => v.extend(rng.bytes(run)),
            }
        }
        v.truncate(n);
        v
    }

    /// Pushes `data` in slices of the sizes `next` gives, the last one final; returns the
    /// batches per size, concatenated.
    /// Push sizes of slicing `si` (0..5): the whole input, one byte, 4093 bytes, up to a few
    /// gear windows, up to 700,000 bytes.
    fn push_sizes(si: usize, whole: usize, mut r: Rng) -> impl FnMut() -> usize {
        move || match si {
            0 => whole,
            1 => 1,
            2 => 4093,
            3 => 1 + r.below(3 * 64 + 5),
            _ => 1 + r.below(700_000),
        }
    }

    fn run_multi(m: &mut MultiChunker, data: &[u8], next: &mut dyn FnMut() -> usize, threads: Threads) -> Vec<Batch> {
        let mut all = vec![Batch::default(); m.len()];
        let mut pos = 0;
        loop {
            let n = next().min(data.len() - pos);
            let fin = pos + n == data.len();
            let bs = m.push_with(&data[pos..pos + n], fin, threads);
            assert_eq!(bs.len(), all.len());
            for (a, b) in all.iter_mut().zip(bs) {
                assert_eq!(b.hashes.len(), 32 * b.lengths.len());
                a.lengths.extend(b.lengths);
                a.hashes.extend(b.hashes);
            }
            pos += n;
            if fin {
                return all;
            }
        }
    }

    fn single(p: Params, key: Option<[u8; 32]>, data: &[u8]) -> Batch {
        Chunker::new(p, key).push_with(data, true, Threads::One)
    }

    /// The multi-size chunker against one Chunker per size (and the reference loop for the
    /// lengths), for several slicings and both thread modes.
    fn check(ps: &[Params], key: Option<[u8; 32]>, data: &[u8], rng: &mut Rng) {
        let want: Vec<Batch> = ps.iter().map(|&p| single(p, key, data)).collect();
        for (p, w) in ps.iter().zip(&want) {
            let r: Vec<u32> = reference_lengths(p, data).iter().map(|&l| l as u32).collect();
            assert_eq!(w.lengths, r, "the single chunker against the reference, {p:?}");
        }
        let whole = data.len().max(1);
        for si in 0..5 {
            if si == 1 && data.len() > 300_000 {
                continue; // one byte per push: only on small inputs
            }
            for threads in [Threads::One, Threads::Two] {
                let mut m = MultiChunker::new(ps, key);
                let mut next = push_sizes(si, whole, Rng::new(rng.next_u64()));
                let got = run_multi(&mut m, data, &mut next, threads);
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.lengths, w.lengths, "size {k} {:?}, slicing {si}, {threads:?}, n = {}", ps[k], data.len());
                    assert_eq!(g.hashes, w.hashes, "size {k} {:?}, slicing {si}, {threads:?}", ps[k]);
                }
            }
        }
    }

    #[test]
    fn scan_all_finds_every_hit_of_the_reference_loop() {
        let mut rng = Rng::new(11);
        let data = mixed(&mut rng, 300_000);
        for k in [1u32, 4, 8, 11] {
            let m = crate::params::mask(k);
            let mut want = Vec::new();
            let mut h = 12345u64;
            for (i, &b) in data.iter().enumerate() {
                h = (h << 1).wrapping_add(g(b));
                if h & m == 0 {
                    want.push(Cand { off: i, h });
                }
            }
            for f in [scan_all, scan_run] {
                for cut in [0usize, 1, 3, 64, 255, 256, 257, 1000, 4 * 64 + 3, data.len() - 5, data.len()] {
                    // Two calls (as across pushes) give the same as one, whatever the lengths.
                    let mut got = Vec::new();
                    let mid = f(12345, &data[..cut], 0, m, &mut got);
                    let end = f(mid, &data[cut..], cut, m, &mut got);
                    assert_eq!(end, h, "cut {cut}");
                    assert_eq!(got, want, "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn the_analyze_sizes_equal_one_chunker_each() {
        let mut rng = Rng::new(21);
        let ps: Vec<Params> = [8usize << 10, 16 << 10, 64 << 10].iter().map(|&a| params(a / 4, a, a * 4, 2)).collect();
        for n in [0usize, 1, 100, 2047, 2048 + 63, 70_000, 3 << 20] {
            let data = mixed(&mut rng, n);
            check(&ps, None, &data, &mut rng);
        }
        let random = rng.bytes(5 << 20);
        check(&ps, None, &random, &mut rng);
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        check(&ps, Some(key), &random[..1 << 20], &mut rng);
    }

    #[test]
    fn tiny_and_odd_parameters_every_normalization() {
        let mut rng = Rng::new(22);
        let data = mixed(&mut rng, 400_000);
        for nc in 0..=MAX_NORMALIZATION as u32 {
            let mut ps = vec![
                params(64, 256, 256, nc),
                params(64, 256, 1024, nc),
                params(100, 256, 300, nc),
                params(256, 256, 4096, nc),
                params(127, 512, 700, nc),
                params(2048, 8192, 8192, nc),
                params(4096, 4096, 65536, nc),
                params(1000, 1024, 1100, nc),
            ];
            ps.retain(|p| p.max_size >= p.avg_size);
            check(&ps, None, &data, &mut rng);
            // One size alone, and sizes in another order with a repeat.
            check(&ps[1..2], None, &data, &mut rng);
            let mut rev = ps.clone();
            rev.reverse();
            rev.push(ps[0]);
            check(&rev, None, &data[..100_000], &mut rng);
        }
    }

    #[test]
    fn random_parameters() {
        let mut rng = Rng::new(23);
        for round in 0..12 {
            let n = 200_000 + rng.below(600_000);
            let data = mixed(&mut rng, n);
            let count = 1 + rng.below(4);
            let ps: Vec<Params> = (0..count)
                .map(|_| {
                    let avg = 256usize << rng.below(9);
                    let min = 64 + rng.below(avg - 63);
                    let max = avg + rng.below(4 * avg);
                    let bits = avg.trailing_zeros();
                    let nc = rng.below(((bits - 1).min(3) + 1) as usize) as u32;
                    params(min, avg, max, nc)
                })
                .collect();
            let _ = round;
            check(&ps, None, &data, &mut rng);
        }
    }

    #[test]
    fn degenerate_data() {
        let mut rng = Rng::new(24);
        let ps: Vec<Params> = vec![
            params(64, 256, 1024, 3),
            params(2048, 8192, 32768, 2),
            params(16 << 10, 64 << 10, 256 << 10, 2),
            params(256, 1024, 1024, 0),
        ];
        let zeros = vec![0u8; 1 << 20];
        check(&ps, None, &zeros, &mut rng);
        let ones = vec![0xffu8; 700_000];
        check(&ps, None, &ones, &mut rng);
        for period in [1usize, 2, 3, 7, 64, 65, 100, 4096] {
            let pat = rng.bytes(period);
            let data: Vec<u8> = pat.iter().cycle().take(600_000).copied().collect();
            check(&ps, None, &data, &mut rng);
        }
    }

    #[test]
    fn xxh3_fingerprints_same_cuts_one_shot_digests_any_slicing() {
        let mut rng = Rng::new(26);
        // Small sizes so that one-byte and tiny pushes make chunks span hundreds of pushes;
        // the analyze sizes with slices far smaller than their chunks (up to 256 KiB).
        let small: Vec<Params> = vec![params(64, 256, 1024, 2), params(1024, 4096, 16384, 1), params(256, 1024, 1024, 0)];
        let analyze: Vec<Params> = [8usize << 10, 16 << 10, 64 << 10].iter().map(|&a| params(a / 4, a, a * 4, 2)).collect();
        let mut cases: Vec<(Vec<Params>, Vec<u8>)> = Vec::new();
        for n in [0usize, 1, 100, 240, 241, 5000, 200_000] {
            cases.push((small.clone(), mixed(&mut rng, n)));
        }
        cases.push((analyze.clone(), mixed(&mut rng, 3 << 20)));
        cases.push((analyze.clone(), rng.bytes(2 << 20)));
        cases.push((analyze, vec![0u8; 1 << 20]));
        for (ps, data) in &cases {
            let want: Vec<Batch> = ps.iter().map(|&p| single(p, None, data)).collect();
            for si in 0..5 {
                if si == 1 && data.len() > 300_000 {
                    continue;
                }
                for threads in [Threads::One, Threads::Two] {
                    let mut m = MultiChunker::with_fingerprint(ps, None, Fingerprint::Xxh3).unwrap();
                    let mut next = push_sizes(si, data.len().max(1), Rng::new(rng.next_u64()));
                    let got = run_multi(&mut m, data, &mut next, threads);
                    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.lengths, w.lengths, "size {k}, slicing {si}, {threads:?}, n = {}", data.len());
                        let mut pos = 0usize;
                        for (i, &len) in g.lengths.iter().enumerate() {
                            let chunk = &data[pos..pos + len as usize];
                            let fp = &g.hashes[32 * i..32 * i + 32];
                            assert_eq!(fp[..16], xxh3_128(chunk).to_be_bytes(), "size {k} chunk {i}, slicing {si}, {threads:?}");
                            assert_eq!(fp[16..], [0u8; 16]);
                            pos += len as usize;
                        }
                    }
                }
            }
        }
        // A known digest (`printf abc | xxhsum -H2`), through the streaming carry too.
        let mut m = MultiChunker::with_fingerprint(&small[..1], None, Fingerprint::Xxh3).unwrap();
        m.push(b"a", false);
        m.push(b"b", false);
        let b = m.push(b"c", true);
        assert_eq!(b[0].lengths, vec![3]);
        let hex: String = b[0].hashes[..16].iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(hex, "06b05ab6733a618578af5f94892f3950");
        // No key with XXH3; BLAKE3 with a key as before.
        assert!(MultiChunker::with_fingerprint(&small, Some([1u8; 32]), Fingerprint::Xxh3).is_err());
        assert!(MultiChunker::with_fingerprint(&small, Some([1u8; 32]), Fingerprint::Blake3).is_ok());
    }

    #[test]
    fn final_push_resets_for_a_new_stream() {
        let mut rng = Rng::new(25);
        let ps = vec![params(1024, 4096, 16384, 2), params(64, 256, 512, 1)];
        let a = mixed(&mut rng, 100_000);
        let b = mixed(&mut rng, 70_001);
        let mut m = MultiChunker::new(&ps, None);
        let first = m.push(&a, true);
        let second = run_multi(&mut m, &b, &mut || 5000, Threads::Two);
        for (k, &p) in ps.iter().enumerate() {
            assert_eq!(first[k], single(p, None, &a));
            assert_eq!(second[k], single(p, None, &b));
        }
        // Empty pushes and an empty stream.
        assert!(m.push(&[], false).iter().all(|b| b.is_empty()));
        assert!(m.push(&[], true).iter().all(|b| b.is_empty()));
        let tiny = m.push(&a[..100], true);
        assert_eq!(tiny[0].lengths, vec![100]);
        assert_eq!(tiny[1].lengths, vec![100]);
        // reset drops an open chunk.
        m.push(&a[..50_000], false);
        m.reset();
        let again = m.push(&b, true);
        assert_eq!(again[0], single(ps[0], None, &b));
    }
}
