//! Chunk+hash throughput of the Rust core alone (no N-API), one stream, in memory:
//! `cargo run --release --example pushbench -- FILE`.
use chunkyard::chunker::{Chunker, Threads};
use chunkyard::params::Params;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: pushbench FILE");
    let data = std::fs::read(path).unwrap();
    let p = Params::new(16 << 10, 64 << 10, 256 << 10, 2).unwrap();
    let mb = data.len() as f64 / 1e6;
    for round in 0..2 {
        for piece in [16usize << 10, 64 << 10, 76 << 10, 256 << 10] {
            let t = Instant::now();
            let mut x = 0u8;
            for c in data.chunks(piece) {
                x ^= blake3::hash(c).as_bytes()[0];
            }
            let dt = t.elapsed().as_secs_f64();
            println!("round {round}: blake3 of {:>3} KiB pieces {:6.0} MB/s ({x})", piece >> 10, mb / dt);
        }
        let t = Instant::now();
        let h = blake3::hash(&data);
        let dt = t.elapsed().as_secs_f64();
        println!("round {round}: blake3 whole file   {:6.0} MB/s ({})", mb / dt, &h.to_hex()[..8]);
        for slice in [1usize << 20, 4 << 20] {
            for threads in [Threads::One, Threads::Two] {
                let mut c = Chunker::new(p, None);
                let t = Instant::now();
                let mut n = 0;
                for (i, s) in data.chunks(slice).enumerate() {
                    let fin = (i + 1) * slice >= data.len();
                    n += c.push_with(s, fin, threads).len();
                }
                let dt = t.elapsed().as_secs_f64();
                println!("round {round}: chunk+hash {:>4} KiB {threads:?}: {:6.0} MB/s, {n} chunks, avg {:.0} B", slice >> 10, mb / dt, data.len() as f64 / n as f64);
            }
        }
    }
}
