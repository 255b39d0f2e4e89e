//! Compression-context options on real data (issue 13): stored bytes and decode speed of the
//! unique chunks of FILES (chunked and deduplicated as a store would, in order), each chunk
//! compressed alone at several zstd levels (LEVELS), with a trained dictionary, in runs whose
//! first chunk is every other member's dictionary, and grouped into frames over runs of
//! chunks (FRAMES, at FRAME_LEVELS) with the cost of reading one member alone.
//! `LEVELS=3 FRAMES=1,2,4,8,16 cargo run --release --example zdictbench --features zdict -- FILE...`
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
    let groups: Vec<usize> = std::env::var("FRAMES").map(|v| v.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![1, 2, 4, 8, 16]);
    // Runs of G chunks where the first is compressed alone and every other one with the
    // first's raw bytes as its dictionary (each chunk stays its own stored object, one base
    // away from readable, like a delta of depth 1).
    for &g in &groups {
        if g < 2 { continue; }
        let mut stored = 0usize;
        let c0 = cpu();
        let mut alone = zstd::bulk::Compressor::new(3).unwrap();
        for run in uniq.chunks(g) {
            stored += alone.compress(&run[0]).unwrap().len().min(run[0].len());
            let mut with_base = zstd::bulk::Compressor::with_dictionary(3, &run[0]).unwrap();
            for m in &run[1..] {
                stored += with_base.compress(m).unwrap().len().min(m.len());
            }
        }
        let ccpu = cpu() - c0;
        println!("{:28} stored {:>12} B ({:.4} of raw)  compress {:.2} cpu s",
            format!("head-as-dict runs of {g}"), stored, stored as f64 / raw as f64, ccpu);
    }
    // Frames over runs of G consecutive unique chunks (G = 1 is "each chunk alone"), at the
    // levels in FRAME_LEVELS: stored bytes, compression CPU, the CPU of decoding every frame
    // once (a whole-stream restore), and of reading every chunk alone (its frame decoded up
    // to the chunk's end: the cost a single-chunk read pays in a grouped frame).
    let frame_levels: Vec<i32> = std::env::var("FRAME_LEVELS").map(|v| v.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![3]);
    for &level in &frame_levels {
        for &g in &groups {
            let mut comp = zstd::bulk::Compressor::new(level).unwrap();
            let runs: Vec<Vec<u8>> = uniq.chunks(g).map(|r| r.concat()).collect();
            let c0 = cpu();
            let frames: Vec<Vec<u8>> = runs.iter().map(|r| comp.compress(r).unwrap()).collect();
            let ccpu = cpu() - c0;
            let stored: usize = frames.iter().zip(&runs).map(|(f, r)| f.len().min(r.len())).sum();
            let mut de = zstd::bulk::Decompressor::new().unwrap();
            let mut buf = vec![0u8; g * (256 << 10)];
            let d0 = cpu();
            for (f, r) in frames.iter().zip(&runs) {
                let n = de.decompress_to_buffer(f, &mut buf[..]).unwrap();
                assert_eq!(n, r.len());
            }
            let dcpu = cpu() - d0;
            // Single-chunk reads: stream-decode the frame only up to the member's end.
            let s0 = cpu();
            let mut decoded_for_singles = 0usize;
            for (ri, f) in frames.iter().enumerate() {
                let members = &uniq[ri * g..(ri * g + g).min(uniq.len())];
                let mut end = 0usize;
                for m in members {
                    end += m.len();
                    let mut d = zstd::stream::read::Decoder::with_buffer(&f[..]).unwrap();
                    let mut out = vec![0u8; end];
                    std::io::Read::read_exact(&mut d, &mut out).unwrap();
                    decoded_for_singles += end;
                }
            }
            let scpu = cpu() - s0;
            println!("{:28} stored {:>12} B ({:.4} of raw)  compress {:.2} cpu s  decode all {:.2} cpu s  single-chunk reads {:.2} cpu s ({:.1}x the bytes)",
                format!("{g}-chunk frames level {level}"), stored, stored as f64 / raw as f64, ccpu, dcpu, scpu, decoded_for_singles as f64 / raw as f64);
        }
    }
}

fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
