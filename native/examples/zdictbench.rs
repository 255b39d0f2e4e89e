//! Compression-context options on real data (issue 13): stored bytes and decode speed of the
//! unique chunks of FILES (chunked and deduplicated as a store would, in order), each chunk
//! compressed alone at several zstd levels, with a trained dictionary, and (for reference
//! only) grouped into larger frames.
//! `cargo run --release --example zdictbench --features zdict -- FILE...`
use chunkyard::chunker::{Chunker, Threads};
use chunkyard::params::Params;
use std::collections::HashSet;
use std::time::Instant;

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let p = Params::new(16 << 10, 64 << 10, 256 << 10, 2).unwrap();
    let mut seen = HashSet::new();
    let mut uniq: Vec<Vec<u8>> = Vec::new();
    let mut total_in = 0usize;
    for f in &files {
        let data = std::fs::read(f).unwrap();
        total_in += data.len();
        let mut c = Chunker::new(p, None);
        let b = c.push_with(&data, true, Threads::One);
        let mut pos = 0usize;
        for (i, &len) in b.lengths.iter().enumerate() {
            let h = &b.hashes[i * 32..i * 32 + 32];
            if seen.insert(h.to_vec()) {
                uniq.push(data[pos..pos + len as usize].to_vec());
            }
            pos += len as usize;
        }
    }
    let raw: usize = uniq.iter().map(|c| c.len()).sum();
    println!("input {} B, unique chunks {} ({} B)", total_in, uniq.len(), raw);
    let per_chunk = |name: &str, level: i32, dict: Option<&[u8]>| {
        let edict = dict.map(|d| zstd::dict::EncoderDictionary::copy(d, level));
        let ddict = dict.map(zstd::dict::DecoderDictionary::copy);
        let mut comp = match &edict { Some(d) => zstd::bulk::Compressor::with_prepared_dictionary(d).unwrap(), None => zstd::bulk::Compressor::new(level).unwrap() };
        let t = Instant::now();
        let cpu0 = cpu();
        let outs: Vec<Vec<u8>> = uniq.iter().map(|c| comp.compress(c).unwrap()).collect();
        let ct = t.elapsed().as_secs_f64();
        let ccpu = cpu() - cpu0;
        let stored: usize = outs.iter().zip(&uniq).map(|(o, c)| o.len().min(c.len())).sum::<usize>() + dict.map_or(0, |d| d.len());
        let mut de = match &ddict { Some(d) => zstd::bulk::Decompressor::with_prepared_dictionary(d).unwrap(), None => zstd::bulk::Decompressor::new().unwrap() };
        let dcpu0 = cpu();
        let mut buf = vec![0u8; 256 << 10];
        let t = Instant::now();
        for (o, c) in outs.iter().zip(&uniq) {
            if o.len() < c.len() {
                let n = de.decompress_to_buffer(o, &mut buf[..]).unwrap();
                assert_eq!(n, c.len());
            }
        }
        let dt = t.elapsed().as_secs_f64();
        let dcpu = cpu() - dcpu0;
        println!("{name:28} stored {:>12} B ({:.4} of raw)  compress {:6.0} MB/s ({:.2} cpu s, {:.0} MB/cpu-s)  decode {:6.0} MB/s ({:.2} cpu s)", stored, stored as f64 / raw as f64, raw as f64 / 1e6 / ct, ccpu, raw as f64 / 1e6 / ccpu.max(0.01), raw as f64 / 1e6 / dt, dcpu);
        stored
    };
    let levels: Vec<i32> = std::env::var("LEVELS").map(|v| v.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![1, 3, 4, 5, 6, 7, 8, 9, 12]);
    for &level in &levels {
        per_chunk(&format!("per-chunk level {level}"), level, None);
    }
    // Dictionary trained from the first SAMPLE_MIB of unique chunks, cut into 4 KiB samples.
    for (sample_mib, dict_kib) in [(32usize, 112usize)] {
        let mut samples: Vec<&[u8]> = Vec::new();
        let mut got = 0;
        // Spread: every k-th chunk so the sample covers the whole input.
        let want = sample_mib << 20;
        let step = ((raw / want).max(1)) as usize;
        for c in uniq.iter().step_by(step) {
            for s in c.chunks(4096) {
                samples.push(s);
            }
            got += c.len();
            if got >= want { break; }
        }
        let t = Instant::now();
        let dict = zstd::dict::from_samples(&samples, dict_kib << 10).unwrap();
        let tt = t.elapsed().as_secs_f64();
        println!("dict {dict_kib} KiB from {sample_mib} MiB sample: trained in {tt:.2} s");
        for level in [3, 6, 7] {
            per_chunk(&format!("dict{dict_kib}K/{sample_mib}M level {level}"), level, Some(&dict));
        }
    }
    // Reference only (breaks single-chunk reads): frames over runs of 16 chunks.
    for level in [3, 9] {
        let mut comp = zstd::bulk::Compressor::new(level).unwrap();
        let mut stored = 0;
        for g in uniq.chunks(16) {
            let cat: Vec<u8> = g.concat();
            stored += comp.compress(&cat).unwrap().len().min(cat.len());
        }
        println!("{:28} stored {:>12} B ({:.4} of raw)", format!("16-chunk frames level {level}"), stored, stored as f64 / raw as f64);
    }
}

fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
