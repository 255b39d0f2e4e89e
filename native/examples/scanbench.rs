//! The measurement behind the loop shape chosen in src/scan.rs: gear cut-point search speed of
//! a few unrollings, on one core, no hashing. `cargo run --release --example scanbench [FILE]`
//! (FILE: first 512 MiB used; default 256 MiB of pseudo-random bytes).
use chunkyard::gear::GEAR;
use chunkyard::params::mask;
use chunkyard::scan::{scan, scan_reference, Scan};
use std::time::Instant;

#[inline(always)]
fn g(b: u8) -> u64 {
    GEAR[b as usize]
}

fn finish(base: usize, r: Scan) -> Scan {
    match r {
        Scan::Hit(i) => Scan::Hit(base + i),
        miss => miss,
    }
}

/// FastCDC 2020: two bytes per step with G' = G << 1 and mask << 1.
fn two(mut h: u64, data: &[u8], m: u64) -> Scan {
    let m2 = m << 1;
    let mut it = data.chunks_exact(2);
    let mut base = 0;
    for p in &mut it {
        let h1 = (h << 2).wrapping_add(g(p[0]) << 1);
        if h1 & m2 == 0 {
            return Scan::Hit(base);
        }
        let h2 = h1.wrapping_add(g(p[1]));
        if h2 & m == 0 {
            return Scan::Hit(base + 1);
        }
        h = h2;
        base += 2;
    }
    finish(base, scan_reference(h, it.remainder(), m))
}

/// Eight bytes per step, same idea as the four-byte production loop.
fn eight(mut h: u64, data: &[u8], m: u64) -> Scan {
    let mut it = data.chunks_exact(8);
    let mut base = 0;
    for p in &mut it {
        let mut s = [0u64; 8];
        let mut acc = 0u64;
        for (sk, &b) in s.iter_mut().zip(p) {
            acc = (acc << 1).wrapping_add(g(b));
            *sk = acc;
        }
        for (k, &sk) in s.iter().enumerate() {
            if (h << (k + 1)).wrapping_add(sk) & m == 0 {
                return Scan::Hit(base + k);
            }
        }
        h = (h << 8).wrapping_add(s[7]);
        base += 8;
    }
    finish(base, scan_reference(h, it.remainder(), m))
}

/// Four independent one-byte chains over four 2 KiB blocks. Bits 0..62 of the gear hash
/// depend only on the last 63 bytes, so a block's chain is warmed up on the 63 bytes before it.
fn lanes4(mut h: u64, data: &[u8], m: u64) -> Scan {
    const L: usize = 2048;
    let warm = |d: &[u8]| d.iter().fold(0u64, |h, &b| (h << 1).wrapping_add(g(b)));
    let mut base = 0usize;
    while base + 4 * L <= data.len() {
        let blk = &data[base..base + 4 * L];
        let mut hs = [h, warm(&blk[L - 63..L]), warm(&blk[2 * L - 63..2 * L]), warm(&blk[3 * L - 63..3 * L])];
        let mut hit = false;
        for i in 0..L {
            for (k, hk) in hs.iter_mut().enumerate() {
                *hk = (*hk << 1).wrapping_add(g(blk[k * L + i]));
            }
            if hs.iter().any(|&hk| hk & m == 0) {
                hit = true;
                break;
            }
        }
        if hit {
            return finish(base, scan_reference(h, blk, m));
        }
        h = hs[3];
        base += 4 * L;
    }
    finish(base, scan_reference(h, &data[base..], m))
}

fn bench(name: &str, f: fn(u64, &[u8], u64) -> Scan, data: &[u8], m: u64) {
    let mut best = f64::MAX;
    let mut hits = 0;
    for _ in 0..5 {
        let t = Instant::now();
        hits = 0;
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + (256 << 10)).min(data.len());
            match f(0, &data[pos..end], m) {
                Scan::Hit(i) => {
                    hits += 1;
                    pos += i + 1;
                }
                Scan::Miss(_) => pos = end,
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{name:24} {:6.0} MB/s  ({hits} hits)", data.len() as f64 / best / 1e6);
}

fn main() {
    let data = match std::env::args().nth(1) {
        Some(p) => {
            let mut v = std::fs::read(p).unwrap();
            v.truncate(512 << 20);
            v
        }
        None => chunkyard::testutil::Rng::new(1).bytes(256 << 20),
    };
    // The default parameters' strict mask (avg 64 KiB, nc 2).
    let m = mask(18);
    for _ in 0..2 {
        bench("one byte (reference)", scan_reference, &data, m);
        bench("two bytes (FastCDC 2020)", two, &data, m);
        bench("four bytes (production)", scan, &data, m);
        bench("eight bytes", eight, &data, m);
        bench("four lanes", lanes4, &data, m);
    }
}
