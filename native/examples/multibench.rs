//! One gear pass for several sizes against one chunker per size, Rust core alone:
//! `cargo run --release --example multibench -- FILE [MiB]`.
use chunkyard::chunker::{Chunker, Threads};
use chunkyard::multi::MultiChunker;
use chunkyard::params::Params;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: multibench FILE [MiB]");
    let mut data = std::fs::read(path).unwrap();
    if let Some(mib) = std::env::args().nth(2) {
        data.truncate(mib.parse::<usize>().unwrap() << 20);
    }
    let ps: Vec<Params> = [8usize << 10, 16 << 10, 64 << 10].iter().map(|&a| Params::new(a / 4, a, a * 4, 2).unwrap()).collect();
    let mb = data.len() as f64 / 1e6;
    let slice = 2usize << 20;
    for k in [11u32, 14] {
        let m = chunkyard::params::mask(k);
        let t = Instant::now();
        let n: usize = data.chunks(slice).map(|s| chunkyard::multi::count_candidates(s, m)).sum();
        println!("candidate scan, mask({k}): {:6.0} MB/s ({n})", mb / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut hits = 0;
        for s in data.chunks(slice) {
            let mut pos = 0;
            while pos < s.len() {
                match chunkyard::scan::scan(0, &s[pos..], m) {
                    chunkyard::scan::Scan::Hit(i) => { hits += 1; pos += i + 1; }
                    chunkyard::scan::Scan::Miss(_) => break,
                }
            }
        }
        println!("scan::scan restarting, mask({k}): {:6.0} MB/s ({hits})", mb / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut x = 0u8;
        for s in data.chunks(8192) { x ^= blake3::hash(s).as_bytes()[0]; }
        println!("blake3 8 KiB pieces: {:6.0} MB/s ({x})", mb / t.elapsed().as_secs_f64());
    }
    for threads in [Threads::One, Threads::Two] {
        let t = Instant::now();
        let mut c = Chunker::new(ps[2], None);
        for s in data.chunks(slice) {
            c.push_with(s, false, threads);
        }
        println!("{threads:?}: one chunker 64KiB         {:6.0} MB/s", mb / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for &p in &ps {
            let mut c = Chunker::new(p, None);
            for s in data.chunks(slice) {
                c.push_with(s, false, threads);
            }
        }
        println!("{threads:?}: three chunkers, one by one {:6.0} MB/s", mb / t.elapsed().as_secs_f64());
        for sizes in [&ps[2..], &ps[..]] {
            let t = Instant::now();
            let mut m = MultiChunker::new(sizes, None);
            for s in data.chunks(slice) {
                m.push_with(s, false, threads);
            }
            println!("{threads:?}: multi, {} sizes             {:6.0} MB/s", sizes.len(), mb / t.elapsed().as_secs_f64());
        }
    }
}
