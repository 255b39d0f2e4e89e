//! The streaming chunker v1 (docs/chunking.md): slices of any size in, completed chunks
//! (length + BLAKE3 fingerprint) out, with identical results for every slicing.

use crate::params::Params;
use crate::scan::{is_zero, scan_zero_runs_with as scan, Scan};
use std::sync::mpsc;

/// The chunks completed by one push, in stream order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    pub lengths: Vec<u32>,
    /// 32 bytes per chunk, back to back.
    pub hashes: Vec<u8>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    fn push(&mut self, len: usize, hash: &blake3::Hash) {
        // max_size <= 64 MiB, so a chunk length always fits.
        self.lengths.push(len as u32);
        self.hashes.extend_from_slice(hash.as_bytes());
    }
}

/// How a push spreads its work over threads. Results are the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Cut search and hashing one after the other on the calling thread.
    One,
    /// Hash completed chunks on a pool thread while the cut search goes on.
    Two,
}

/// Below this a second thread costs more to wake and feed than it saves.
pub const TWO_THREADS_MIN_SLICE: usize = 256 << 10;

/// Bytes of completed chunks the cut search collects before handing them to the hashing
/// thread. Smaller means more wake-ups; larger means more hashing left after the search ends.
const HANDOFF_BYTES: usize = 256 << 10;

/// The cut-point part of the streaming state: how far into the open chunk we are and the
/// gear hash so far. Kept apart from the BLAKE3 state so that the two can live on
/// different threads during a push.
#[derive(Debug, Clone, Copy)]
struct Cutter {
    params: Params,
    /// Bytes of the open chunk seen so far (< max_size between calls).
    open_len: usize,
    /// Gear hash over the open chunk's bytes from index min_size on.
    h: u64,
}

impl Cutter {
    /// Consumes `data` up to and including the end of the open chunk, if it ends in `data`:
    /// returns that end (an offset into `data`) and starts a new chunk. Otherwise consumes
    /// all of `data` and returns None.
    #[inline]
    fn next_cut(&mut self, data: &[u8]) -> Option<usize> {
        let p = &self.params;
        let mut pos = 0usize;
        if self.open_len < p.min_size {
            // The gear never reads a chunk's first min_size bytes.
            let skip = (p.min_size - self.open_len).min(data.len());
            self.open_len += skip;
            pos = skip;
            if self.open_len < p.min_size {
                return None;
            }
        }
        // Strict region: chunk indices min_size .. avg_size (avg_size <= max_size).
        if self.open_len < p.avg_size {
            let n = (p.avg_size - self.open_len).min(data.len() - pos);
            match scan(p.gear, self.h, &data[pos..pos + n], p.mask_s) {
                Scan::Hit(i) => return Some(self.cut(pos + i + 1)),
                Scan::Miss(h) => self.h = h,
            }
            self.open_len += n;
            pos += n;
            if self.open_len < p.avg_size {
                return None;
            }
        }
        // Loose region: up to max_size.
        let n = (p.max_size - self.open_len).min(data.len() - pos);
        match scan(p.gear, self.h, &data[pos..pos + n], p.mask_l) {
            Scan::Hit(i) => return Some(self.cut(pos + i + 1)),
            Scan::Miss(h) => self.h = h,
        }
        self.open_len += n;
        pos += n;
        if self.open_len == p.max_size {
            return Some(self.cut(pos));
        }
        None
    }

    #[inline]
    fn cut(&mut self, end: usize) -> usize {
        self.open_len = 0;
        self.h = 0;
        end
    }
}

/// One-shot fingerprint of a whole chunk.
#[inline]
pub fn fingerprint(key: Option<&[u8; 32]>, bytes: &[u8]) -> blake3::Hash {
    match key {
        Some(k) => blake3::keyed_hash(k, bytes),
        None => blake3::hash(bytes),
    }
}

/// Fingerprints of all-zero chunks by length, so that a disk image's zero runs are not
/// hashed again chunk after chunk (most are max_size long; a few lengths cover them).
#[derive(Default)]
struct ZeroHashes {
    known: Vec<(usize, blake3::Hash)>,
}

impl ZeroHashes {
    const KEEP: usize = 8;
    /// Worth a zero test: below this a chunk is hashed as fast as it is tested.
    const MIN_LEN: usize = 4096;

    fn get(&mut self, key: Option<&[u8; 32]>, len: usize) -> blake3::Hash {
        if let Some(&(_, h)) = self.known.iter().find(|(l, _)| *l == len) {
            return h;
        }
        let h = fingerprint(key, &vec![0u8; len]);
        if self.known.len() == Self::KEEP {
            self.known.remove(0);
        }
        self.known.push((len, h));
        h
    }
}

/// Hashes the pieces of `data` cut at `ends` and returns their fingerprints; the first piece
/// continues `carry` when the open chunk began in an earlier slice. Bytes after the last end
/// go into `carry` for the next slice.
struct Fingerprinter<'a> {
    key: Option<&'a [u8; 32]>,
    carry: &'a mut blake3::Hasher,
    /// True when `carry` holds bytes of the chunk that `data[0..]` continues.
    carry_used: bool,
    zeros: &'a mut ZeroHashes,
    data: &'a [u8],
    start: usize,
    out: Batch,
}

impl<'a> Fingerprinter<'a> {
    #[inline]
    fn chunk(&mut self, end: usize, len: usize) {
        let piece = &self.data[self.start..end];
        let hash = if self.carry_used {
            self.carry.update(piece);
            let h = self.carry.finalize();
            self.carry.reset();
            self.carry_used = false;
            h
        } else if piece.len() >= ZeroHashes::MIN_LEN && is_zero(piece) {
            self.zeros.get(self.key, piece.len())
        } else {
            fingerprint(self.key, piece)
        };
        self.out.push(len, &hash);
        self.start = end;
    }

    fn rest(self) -> Batch {
        if self.start < self.data.len() {
            self.carry.update(&self.data[self.start..]);
        }
        self.out
    }
}

/// A chunker for one stream at a time. Not thread-safe by itself: the N-API layer makes
/// sure only one push runs at a time.
pub struct Chunker {
    cutter: Cutter,
    key: Option<[u8; 32]>,
    /// BLAKE3 state of the open chunk's bytes from earlier slices.
    carry: blake3::Hasher,
    zeros: ZeroHashes,
}

impl Chunker {
    pub fn new(params: Params, key: Option<[u8; 32]>) -> Chunker {
        let carry = match &key {
            Some(k) => blake3::Hasher::new_keyed(k),
            None => blake3::Hasher::new(),
        };
        Chunker { cutter: Cutter { params, open_len: 0, h: 0 }, key, carry, zeros: ZeroHashes::default() }
    }

    pub fn params(&self) -> &Params {
        &self.cutter.params
    }

    pub fn key(&self) -> Option<&[u8; 32]> {
        self.key.as_ref()
    }

    /// Bytes of the open chunk (0 right after a cut or a final push).
    pub fn open_len(&self) -> usize {
        self.cutter.open_len
    }

    /// Feeds the next slice of the stream; returns every chunk that ends in it. With
    /// `fin`, the slice is the end of the stream: the open chunk is emitted too and the
    /// chunker is ready for a new stream.
    pub fn push(&mut self, data: &[u8], fin: bool) -> Batch {
        let threads =
            if data.len() >= TWO_THREADS_MIN_SLICE && available_cpus() >= 2 { Threads::Two } else { Threads::One };
        self.push_with(data, fin, threads)
    }

    pub fn push_with(&mut self, data: &[u8], fin: bool, threads: Threads) -> Batch {
        let carried = self.cutter.open_len > 0;
        let key = self.key.as_ref();
        let mut fp = Fingerprinter {
            key,
            carry: &mut self.carry,
            carry_used: carried,
            zeros: &mut self.zeros,
            data,
            start: 0,
            out: Batch::default(),
        };
        let cutter = &mut self.cutter;
        let first_len = cutter.open_len;
        let mut batch = match threads {
            Threads::One => {
                let mut pos = 0;
                let mut prefix = first_len;
                while let Some(end) = cutter.next_cut(&data[pos..]) {
                    fp.chunk(pos + end, prefix + end);
                    pos += end;
                    prefix = 0;
                }
                fp.rest()
            }
            Threads::Two => {
                let (tx, rx) = mpsc::channel::<Vec<usize>>();
                let mut hashed = None;
                rayon_core::in_place_scope(|s| {
                    let hashed = &mut hashed;
                    s.spawn(move |_| {
                        let mut prev = 0;
                        let mut prefix = first_len;
                        for ends in rx {
                            for end in ends {
                                fp.chunk(end, prefix + end - prev);
                                prev = end;
                                prefix = 0;
                            }
                        }
                        *hashed = Some(fp.rest());
                    });
                    // Cuts go over in batches: a wake-up of the hashing thread costs several
                    // microseconds, too much to pay per 64 KiB chunk.
                    let mut pos = 0;
                    let mut sent = 0;
                    let mut ends = Vec::new();
                    while let Some(end) = cutter.next_cut(&data[pos..]) {
                        pos += end;
                        ends.push(pos);
                        if pos - sent >= HANDOFF_BYTES {
                            sent = pos;
                            // The receiver lives until tx is dropped, so send cannot fail.
                            let _ = tx.send(std::mem::take(&mut ends));
                        }
                    }
                    if !ends.is_empty() {
                        let _ = tx.send(ends);
                    }
                    drop(tx);
                });
                // in_place_scope returns after the spawned job, and rethrows its panic.
                hashed.expect("the hashing job ran")
            }
        };
        if fin && self.cutter.open_len > 0 {
            let hash = self.carry.finalize();
            batch.push(self.cutter.open_len, &hash);
            self.carry.reset();
            self.cutter.cut(0);
        }
        batch
    }

    /// Drops the open chunk, if any, and starts a new stream.
    pub fn reset(&mut self) {
        self.carry.reset();
        self.cutter.cut(0);
    }
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Cuts a whole stream in one call with the one-byte reference loop: the definition the
/// streaming engine is tested against. Returns chunk lengths.
pub fn reference_lengths(params: &Params, data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut s = 0;
    while s < data.len() {
        let n = data.len() - s;
        if n <= params.min_size {
            out.push(n);
            break;
        }
        let limit = n.min(params.max_size);
        let mut h = 0u64;
        let mut len = limit;
        for i in params.min_size..limit {
            h = (h << 1).wrapping_add(params.gear[data[s + i] as usize]);
            let mask = if i < params.avg_size { params.mask_s } else { params.mask_l };
            if h & mask == 0 {
                len = i + 1;
                break;
            }
        }
        out.push(len);
        s += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn params(min: usize, avg: usize, max: usize, nc: u32) -> Params {
        Params::new(min, avg, max, nc).unwrap()
    }

    /// Feeds `data` in slices whose sizes come from `sizes` (cycled), the last push final.
    fn run(c: &mut Chunker, data: &[u8], sizes: &mut dyn FnMut() -> usize, threads: Threads) -> Batch {
        let mut all = Batch::default();
        let mut pos = 0;
        loop {
            let n = sizes().min(data.len() - pos);
            let fin = pos + n == data.len();
            let b = c.push_with(&data[pos..pos + n], fin, threads);
            all.lengths.extend(b.lengths);
            all.hashes.extend(b.hashes);
            pos += n;
            if fin {
                return all;
            }
        }
    }

    fn check_batch(p: &Params, key: Option<&[u8; 32]>, data: &[u8], b: &Batch) {
        assert_eq!(b.hashes.len(), 32 * b.len());
        let total: usize = b.lengths.iter().map(|&l| l as usize).sum();
        assert_eq!(total, data.len());
        let mut off = 0;
        for (i, &l) in b.lengths.iter().enumerate() {
            let l = l as usize;
            assert!(l <= p.max_size, "chunk {i} has {l} > max");
            if i + 1 < b.len() {
                assert!(l > p.min_size, "chunk {i} has {l} <= min and is not the last");
            }
            assert!(l > 0);
            let want = fingerprint(key, &data[off..off + l]);
            assert_eq!(&b.hashes[32 * i..32 * i + 32], want.as_bytes(), "fingerprint of chunk {i}");
            off += l;
        }
    }

    /// Data with structure the gear can trip over: random runs, zero runs, repeats.
    fn mixed(rng: &mut Rng, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let run = 1 + rng.below(40_000);
            match rng.below(4) {
                0 => v.resize(v.len() + run, 0),
                1 if v.len() > run => {
                    let from = rng.below(v.len() - run);
                    v.extend_from_within(from..from + run);
                }
                _ => v.extend(rng.bytes(run)),
            }
        }
        v.truncate(n);
        v
    }

    #[test]
    fn one_slice_equals_reference_definition() {
        let mut rng = Rng::new(1);
        for &(min, avg, max, nc) in &[
            (16 << 10, 64 << 10, 256 << 10, 2),
            (64, 256, 256, 0),
            (64, 256, 1024, 3),
            (256, 256, 4096, 1),
            (2048, 8192, 8192, 2),
            (4096, 4096, 65536, 0),
        ] {
            let p = params(min, avg, max, nc);
            for n in [0usize, 1, 63, 64, 65, min, min + 1, max, max + 1, 3 * max + 17, 3 << 20] {
                let data = mixed(&mut rng, n);
                let mut c = Chunker::new(p, None);
                let b = c.push_with(&data, true, Threads::One);
                let want: Vec<u32> = reference_lengths(&p, &data).iter().map(|&l| l as u32).collect();
                assert_eq!(b.lengths, want, "params {min}/{avg}/{max}/{nc}, n = {n}");
                check_batch(&p, None, &data, &b);
            }
        }
    }

    #[test]
    fn any_slicing_gives_the_same_chunks() {
        let mut rng = Rng::new(2);
        let data = mixed(&mut rng, 6 << 20);
        for &(min, avg, max, nc) in &[(16 << 10, 64 << 10, 256 << 10, 2), (64, 256, 2048, 1), (1000, 1024, 1100, 3)] {
            let p = params(min, avg, max, nc);
            let whole = Chunker::new(p, None).push_with(&data, true, Threads::One);
            check_batch(&p, None, &data, &whole);
            let mut seed = Rng::new(min as u64);
            let slicings: Vec<Box<dyn FnMut() -> usize>> = vec![
                Box::new(|| 1),
                Box::new(|| 7),
                Box::new(|| 4096),
                Box::new(move || 1 + seed.below(300_000)),
                Box::new(|| 1 << 20),
                Box::new(|| usize::MAX),
            ];
            for (k, mut sizes) in slicings.into_iter().enumerate() {
                // Byte-at-a-time over 6 MiB is slow in debug builds; a prefix says as much.
                let d = if k == 0 { &data[..200_000] } else { &data[..] };
                let want = if k == 0 { Chunker::new(p, None).push_with(d, true, Threads::One) } else { whole.clone() };
                // A thread per push is only worth testing where pushes are big.
                let modes: &[Threads] = if k < 3 { &[Threads::One] } else { &[Threads::One, Threads::Two] };
                for &threads in modes {
                    let got = run(&mut Chunker::new(p, None), d, &mut sizes, threads);
                    assert_eq!(got, want, "slicing {k}, {threads:?}, params {min}/{avg}/{max}/{nc}");
                }
            }
        }
    }

    #[test]
    fn empty_input_yields_no_chunk() {
        let p = params(16 << 10, 64 << 10, 256 << 10, 2);
        let mut c = Chunker::new(p, None);
        assert!(c.push(&[], false).is_empty());
        assert!(c.push(&[], true).is_empty());
        assert!(c.push_with(&[], true, Threads::Two).is_empty());
    }

    #[test]
    fn final_push_resets_for_a_new_stream() {
        let mut rng = Rng::new(3);
        let p = params(1024, 4096, 16384, 2);
        let a = mixed(&mut rng, 100_000);
        let b = mixed(&mut rng, 70_001);
        let mut c = Chunker::new(p, None);
        let first = c.push(&a, true);
        assert_eq!(c.open_len(), 0);
        let second = run(&mut c, &b, &mut || 5000, Threads::One);
        assert_eq!(first, Chunker::new(p, None).push(&a, true));
        assert_eq!(second, Chunker::new(p, None).push(&b, true));
        // A small stream is one chunk shorter than min_size.
        let tiny = c.push(&a[..100], true);
        assert_eq!(tiny.lengths, vec![100]);
        assert_eq!(&tiny.hashes[..], blake3::hash(&a[..100]).as_bytes());
    }

    #[test]
    fn keyed_mode_uses_keyed_hash() {
        let mut rng = Rng::new(4);
        let data = mixed(&mut rng, 2 << 20);
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let p = params(16 << 10, 64 << 10, 256 << 10, 2);
        let plain = Chunker::new(p, None).push(&data, true);
        for threads in [Threads::One, Threads::Two] {
            let keyed = run(&mut Chunker::new(p, Some(key)), &data, &mut || 300_007, threads);
            assert_eq!(keyed.lengths, plain.lengths, "the key changes fingerprints, not cut points");
            check_batch(&p, Some(&key), &data, &keyed);
            let mut off = 0;
            for (i, &l) in keyed.lengths.iter().enumerate() {
                let want = blake3::keyed_hash(&key, &data[off..off + l as usize]);
                assert_eq!(&keyed.hashes[32 * i..32 * i + 32], want.as_bytes());
                assert_ne!(&keyed.hashes[32 * i..32 * i + 32], &plain.hashes[32 * i..32 * i + 32]);
                off += l as usize;
            }
        }
    }

    #[test]
    fn long_zero_runs_as_in_disk_images() {
        // Zero runs of up to 2 MiB, block-aligned or not, between random runs: the cut search
        // skips zero blocks and all-zero chunks take a remembered fingerprint, neither of which
        // may change a cut or a fingerprint, keyed or not, for any slicing.
        let mut rng = Rng::new(5);
        let mut data = Vec::new();
        while data.len() < 12 << 20 {
            let z = rng.below(2 << 20);
            let z = if rng.below(2) == 0 { z & !4095 } else { z };
            data.resize(data.len() + z, 0);
            let noise = 1 + rng.below(300_000);
            data.extend(rng.bytes(noise));
        }
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        for &(min, avg, max, nc) in &[(16 << 10, 64 << 10, 256 << 10, 2), (64, 256, 1024, 3), (256, 256, 4096, 1), (4096, 4096, 65536, 0)] {
            let p = params(min, avg, max, nc);
            let want: Vec<u32> = reference_lengths(&p, &data).iter().map(|&l| l as u32).collect();
            for k in [None, Some(&key)] {
                let mut seed = Rng::new(max as u64);
                for threads in [Threads::One, Threads::Two] {
                    let got = run(&mut Chunker::new(p, k.copied()), &data, &mut || 1 + seed.below(3 << 20), threads);
                    assert_eq!(got.lengths, want, "params {min}/{avg}/{max}/{nc}, {threads:?}");
                    check_batch(&p, k, &data, &got);
                }
            }
        }
    }

    #[test]
    fn zero_runs_cut_at_max_size() {
        // A long zero run settles the gear hash on a constant; whether it hits the mask
        // decides between max-size chunks and min_size+k chunks, both by the definition.
        let p = params(16 << 10, 64 << 10, 256 << 10, 2);
        let data = vec![0u8; 1 << 20];
        let b = Chunker::new(p, None).push(&data, true);
        let want: Vec<u32> = reference_lengths(&p, &data).iter().map(|&l| l as u32).collect();
        assert_eq!(b.lengths, want);
    }
}
