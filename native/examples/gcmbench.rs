//! AES-256-GCM open throughput, ring against gcm.rs, one chunk key per chunk as seal.rs uses
//! them: cargo run --release --example gcmbench [CHUNK_BYTES]
use chunkyard::gcm;
use ring::aead;
use std::time::Instant;

fn main() {
    let size: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(36 * 1024);
    let total = 1usize << 30;
    let n = total / size;
    let mut buf = vec![7u8; size];
    let ad = [1u8; 37];
    for round in 0..3 {
        let t = Instant::now();
        for i in 0..n {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let k = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &key).unwrap());
            let _ = k.seal_in_place_separate_tag(aead::Nonce::assume_unique_for_key([0u8; 12]), aead::Aad::from(&ad[..]), &mut buf).unwrap();
        }
        let ring_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..n {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let _ = gcm::seal_in_place(&key, &[0u8; 12], &ad, &mut buf);
        }
        let gcm_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..n {
            let mut prefix = [0u8; 20];
            prefix[..8].copy_from_slice(&(i as u64).to_le_bytes());
            std::hint::black_box(chunkyard::seal::chunk_seal_key_bytes(&[3u8; 32], &prefix));
        }
        let hkdf_s = t.elapsed().as_secs_f64();
        println!("round {round} chunk {size} B: ring {:.2} GB/s, gcm.rs {:.2} GB/s; HKDF per chunk {:.0} ns", total as f64 / ring_s / 1e9, total as f64 / gcm_s / 1e9, hkdf_s / n as f64 * 1e9);
    }
}
