//! One-shot and batched BLAKE3 (plain or keyed), used to verify chunks on restore.

use crate::chunker::fingerprint;

/// Below this many bytes in all, a batch is hashed on the calling thread only.
pub const TWO_THREADS_MIN_BYTES: usize = 1 << 20;

/// Checks that `lengths` fit in `data_len`; returns their sum.
pub fn check_lengths(data_len: usize, lengths: &[u32]) -> Result<usize, String> {
    let total: u64 = lengths.iter().map(|&l| l as u64).sum();
    if total > data_len as u64 {
        return Err(format!(
            "lengths = [{} pieces summing to {total}]: must sum to at most data.length ({data_len})",
            lengths.len()
        ));
    }
    Ok(total as usize)
}

fn hash_into(key: Option<&[u8; 32]>, data: &[u8], lengths: &[u32], out: &mut [u8]) {
    let mut off = 0;
    for (i, &l) in lengths.iter().enumerate() {
        let l = l as usize;
        out[32 * i..32 * i + 32].copy_from_slice(fingerprint(key, &data[off..off + l]).as_bytes());
        off += l;
    }
}

/// Fingerprints of the consecutive pieces of `data`, 32 bytes each. `lengths` must have
/// passed `check_lengths`. With `two_threads`, the pieces are split in two halves by bytes
/// and the halves are hashed on two threads of the pool.
pub fn hash_many(key: Option<&[u8; 32]>, data: &[u8], lengths: &[u32], two_threads: bool) -> Vec<u8> {
    let mut out = vec![0u8; 32 * lengths.len()];
    let total: usize = lengths.iter().map(|&l| l as usize).sum();
    if !two_threads || lengths.len() < 2 || total < TWO_THREADS_MIN_BYTES {
        hash_into(key, data, lengths, &mut out);
        return out;
    }
    // Split at the first piece that crosses the middle byte.
    let mut acc = 0;
    let mut split = lengths.len();
    for (i, &l) in lengths.iter().enumerate() {
        if acc >= total / 2 {
            split = i;
            break;
        }
        acc += l as usize;
    }
    let split = split.clamp(1, lengths.len() - 1);
    let first_bytes: usize = lengths[..split].iter().map(|&l| l as usize).sum();
    let (out_a, out_b) = out.split_at_mut(32 * split);
    rayon_core::join(
        || hash_into(key, data, &lengths[..split], out_a),
        || hash_into(key, &data[first_bytes..], &lengths[split..], out_b),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    #[test]
    fn many_equals_one_by_one() {
        let mut rng = Rng::new(9);
        let data = rng.bytes(5 << 20);
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let mut lengths = Vec::new();
        let mut left = data.len() - 1234;
        while left > 0 {
            let l = (rng.below(300_000)).min(left);
            lengths.push(l as u32);
            left -= l;
        }
        lengths.push(0);
        assert_eq!(check_lengths(data.len(), &lengths), Ok(data.len() - 1234));
        for k in [None, Some(&key)] {
            for two in [false, true] {
                let got = hash_many(k, &data, &lengths, two);
                let mut off = 0;
                for (i, &l) in lengths.iter().enumerate() {
                    let piece = &data[off..off + l as usize];
                    let want = match k {
                        Some(k) => blake3::keyed_hash(k, piece),
                        None => blake3::hash(piece),
                    };
                    assert_eq!(&got[32 * i..32 * i + 32], want.as_bytes());
                    off += l as usize;
                }
            }
        }
        assert!(hash_many(None, &data, &[], true).is_empty());
    }

    #[test]
    fn lengths_longer_than_data_are_refused() {
        let e = check_lengths(10, &[4, 7]).unwrap_err();
        assert!(e.contains("sum to at most data.length (10)") && e.contains("11"), "{e}");
        assert_eq!(check_lengths(11, &[4, 7]), Ok(11));
        // u32 pieces cannot wrap the sum.
        assert!(check_lengths(usize::MAX >> 1, &[u32::MAX; 4]).is_ok());
    }
}
