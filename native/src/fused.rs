//! A restore's read in one pass of one thread: the stored bytes of a pack range pread(2) into
//! the caller's read buffer, then every chunk of the read decoded (or opened, for a sealed
//! store), checked against its fingerprint and put in its place, exactly as the scatter calls
//! of codec.rs and seal.rs do. Why: a restore of the 30th of 30 nightly dumps makes ~400 reads,
//! and each paid a libuv hop for the pread, a return to JS, and a second hop for the decode
//! (~70 µs per read beyond the bytes); here one hop does both.
//!
//! A short read (the pack ends before the range does) is not an error of its own: the bytes
//! read are what the decode sees, so a chunk whose stored bytes run past them fails as it
//! does after a short pread in JS ("stored bytes run past the end of the read").

use crate::codec::{decode_scatter, decode_scatter_out, FileOut, Piece};

/// The index of a fused read's error that is the pread's (the file could not be read), not a
/// chunk's or the output's.
pub const READ_FAILED: usize = usize::MAX - 1;

/// Reads `buf.len()` bytes of the open file `fd` from `position` on, continuing after short
/// reads and EINTR, until the buffer is full or the file ends: the number of bytes read.
///
/// The caller keeps `fd` open (and naming the same file) until this returns.
pub fn pread_full(fd: i32, position: u64, buf: &mut [u8]) -> Result<usize, String> {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::FromRawFd;
    // SAFETY: the caller keeps fd open until this returns; ManuallyDrop never closes it.
    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let mut done = 0usize;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], position + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read of {} bytes at {}: {e}", buf.len() - done, position + done as u64)),
        }
    }
    Ok(done)
}

/// What a fused read decodes with: a plain store's optional fingerprint key, or a sealed
/// store's fingerprint key and chunk key (seal.rs: each chunk opened in place first).
pub enum Keys<'a> {
    Plain(Option<&'a [u8; 32]>),
    Sealed(Option<&'a [u8; 32]>, &'a [u8; 32]),
}

/// pread of [position, position + data.len()) of `fd` into `data`, then the scatter of the
/// bytes read (codec::decode_scatter_out, or seal::open_scatter_out for sealed chunks):
/// piece i to out[dests[i] ..] or, flagged in `output`'s direct bytes, to the file.
/// Err((READ_FAILED, reason)) when the pread failed; otherwise the scatter's errors.
///
/// SAFETY: as codec::decode_scatter_out; `fd` (and `output`'s fd) stay open until this returns,
/// and `data` is this call's to overwrite.
pub unsafe fn read_scatter(
    fd: i32,
    position: u64,
    data: &mut [u8],
    pieces: &[Piece],
    dests: &[usize],
    fingerprints: &[u8],
    keys: Keys<'_>,
    out: *mut u8,
    out_len: usize,
    output: Option<(&FileOut, &[u8])>,
) -> Result<(), (usize, String)> {
    let got = pread_full(fd, position, data).map_err(|m| (READ_FAILED, m))?;
    let data = &mut data[..got];
    match keys {
        Keys::Plain(key) => match output {
            Some((file, direct)) => decode_scatter_out(data, pieces, dests, fingerprints, key, out, out_len, file, direct),
            None => decode_scatter(data, pieces, dests, fingerprints, key, out, out_len),
        },
        Keys::Sealed(fingerprint_key, chunk_key) => crate::seal::open_scatter_out(data, pieces, dests, fingerprints, fingerprint_key, chunk_key, out, out_len, output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{compress_into, CODEC_NONE, CODEC_ZSTD};
    use std::io::Write;
    use std::os::unix::io::AsRawFd;

    /// A "pack": 100 bytes of header, then the stored forms of three chunks; their pieces and fingerprints.
    fn pack() -> (Vec<u8>, Vec<Vec<u8>>, Vec<Piece>, Vec<u8>) {
        let a: Vec<u8> = b"fused reads ".iter().cycle().take(70_000).copied().collect();
        let mut x: u32 = 7;
        let b: Vec<u8> = (0..30_000)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let c: Vec<u8> = (0..9_000u32).map(|i| (i % 97) as u8).collect();
        let mut file = vec![0x55u8; 100];
        let mut pieces = Vec::new();
        let mut fps = Vec::new();
        for raw in [&a, &b, &c] {
            let mut out = vec![0u8; raw.len()];
            let (lens, codecs) = compress_into(CODEC_ZSTD, raw, &[(0, raw.len())], &mut out, 3).unwrap();
            let stored: &[u8] = if codecs[0] == CODEC_NONE { raw } else { &out[..lens[0] as usize] };
            pieces.push(Piece { offset: file.len(), stored_length: stored.len(), raw_length: raw.len(), codec: codecs[0] });
            file.extend_from_slice(stored);
            fps.extend_from_slice(crate::chunker::fingerprint(None, raw).as_bytes());
        }
        (file, vec![a, b, c], pieces, fps)
    }

    fn temp_file(name: &str, bytes: &[u8]) -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("chunkyard-fused-{name}-{}", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        (path.clone(), std::fs::File::open(&path).unwrap())
    }

    /// Pieces relative to a read starting at `start`.
    fn relative(pieces: &[Piece], start: usize) -> Vec<Piece> {
        pieces.iter().map(|p| Piece { offset: p.offset - start, stored_length: p.stored_length, raw_length: p.raw_length, codec: p.codec }).collect()
    }

    #[test]
    fn reads_decodes_and_places_like_the_two_step_path() {
        let (file, raws, pieces, fps) = pack();
        let (path, f) = temp_file("ok", &file);
        let start = 100;
        let rel = relative(&pieces, start);
        let total: usize = raws.iter().map(|r| r.len()).sum();
        // Places out of pack order: c, then a, then b.
        let dests = [9_000usize, 79_000, 0];
        let mut out = vec![0u8; total];
        let mut data = vec![0u8; file.len() - start];
        unsafe { read_scatter(f.as_raw_fd(), start as u64, &mut data, &rel, &dests, &fps, Keys::Plain(None), out.as_mut_ptr(), out.len(), None) }.unwrap();
        assert_eq!(&out[9_000..79_000], &raws[0][..]);
        assert_eq!(&out[79_000..], &raws[1][..]);
        assert_eq!(&out[..9_000], &raws[2][..]);
        // The same as reading first and decoding after.
        let mut two = vec![0u8; total];
        unsafe { crate::codec::decode_scatter(&file[start..], &rel, &dests, &fps, None, two.as_mut_ptr(), two.len()) }.unwrap();
        assert_eq!(out, two);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_short_pack_fails_on_the_chunk_past_its_end() {
        let (file, raws, pieces, fps) = pack();
        // The pack ends 10 bytes into the third chunk's stored form.
        let (path, f) = temp_file("short", &file[..pieces[2].offset + 10]);
        let rel = relative(&pieces, 0);
        let total: usize = raws.iter().map(|r| r.len()).sum();
        let mut out = vec![0u8; total];
        let mut data = vec![0u8; file.len()];
        let err = unsafe { read_scatter(f.as_raw_fd(), 0, &mut data, &rel, &[0, 70_000, 100_000], &fps, Keys::Plain(None), out.as_mut_ptr(), out.len(), None) }.unwrap_err();
        assert_eq!(err, (2, "stored bytes run past the end of the read".to_string()));
        assert_eq!(&out[..70_000], &raws[0][..], "the chunks before it are placed");
        // A flipped byte is the chunk's error, named by its index.
        let mut bad = file.clone();
        bad[pieces[1].offset + 5] ^= 1;
        let (path2, f2) = temp_file("bad", &bad);
        let err = unsafe { read_scatter(f2.as_raw_fd(), 0, &mut data, &rel, &[0, 70_000, 100_000], &fps, Keys::Plain(None), out.as_mut_ptr(), out.len(), None) }.unwrap_err();
        assert_eq!(err.0, 1);
        std::fs::remove_file(path).unwrap();
        std::fs::remove_file(path2).unwrap();
    }

    #[test]
    fn a_failed_pread_is_read_failed() {
        let (_, raws, pieces, fps) = pack();
        let rel = relative(&pieces, 0);
        let mut out = vec![0u8; raws.iter().map(|r| r.len()).sum()];
        let mut data = vec![0u8; 1000];
        // A directory cannot be read: EISDIR.
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        let err = unsafe { read_scatter(dir.as_raw_fd(), 0, &mut data, &rel, &[0, 70_000, 100_000], &fps, Keys::Plain(None), out.as_mut_ptr(), out.len(), None) }.unwrap_err();
        assert_eq!(err.0, READ_FAILED);
    }
}
