//! Argon2id, version 0x13 (RFC 9106), for the password key slots of encrypted stores
//! (src/crypto/keys.ts, docs/encryption.md "Key slots"). Written from the RFC: BLAKE2b, the
//! variable-length hash H', the compression function G over 1 KiB blocks, and the Argon2id
//! indexing (data-independent addresses in the first half of the first pass, data-dependent
//! after). No secret and no associated data: chunkyard's slots use neither. hash-wasm's
//! WebAssembly build is the fallback and must give the same bytes; the tests below pin both to
//! the reference implementation's vectors (phc-winner-argon2, src/test.c).
//!
//! Why native: a passphrase-opened command waits for this KDF before anything else can run;
//! compiled Rust does the same work in about half hash-wasm's time.

const BLAKE2B_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

const SIGMA: [[usize; 16]; 12] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
];

/// BLAKE2b (RFC 7693) without a key, output 1..=64 bytes.
struct Blake2b {
    h: [u64; 8],
    counter: u128,
    buf: [u8; 128],
    filled: usize,
    out_len: usize,
}

impl Blake2b {
    fn new(out_len: usize) -> Self {
        debug_assert!((1..=64).contains(&out_len));
        let mut h = BLAKE2B_IV;
        h[0] ^= 0x0101_0000 ^ out_len as u64;
        Blake2b { h, counter: 0, buf: [0; 128], filled: 0, out_len }
    }

    fn compress(&mut self, last: bool) {
        let mut m = [0u64; 16];
        for (i, w) in m.iter_mut().enumerate() {
            *w = u64::from_le_bytes(self.buf[8 * i..8 * i + 8].try_into().unwrap());
        }
        let mut v = [0u64; 16];
        v[..8].copy_from_slice(&self.h);
        v[8..].copy_from_slice(&BLAKE2B_IV);
        v[12] ^= self.counter as u64;
        v[13] ^= (self.counter >> 64) as u64;
        if last {
            v[14] = !v[14];
        }
        #[inline(always)]
        fn g(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
            v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
            v[d] = (v[d] ^ v[a]).rotate_right(32);
            v[c] = v[c].wrapping_add(v[d]);
            v[b] = (v[b] ^ v[c]).rotate_right(24);
            v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
            v[d] = (v[d] ^ v[a]).rotate_right(16);
            v[c] = v[c].wrapping_add(v[d]);
            v[b] = (v[b] ^ v[c]).rotate_right(63);
        }
        for s in SIGMA.iter() {
            g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        for i in 0..8 {
            self.h[i] ^= v[i] ^ v[i + 8];
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            // The last block must be compressed with the final flag, so a full buffer is only
            // compressed once more input arrives.
            if self.filled == 128 {
                self.counter += 128;
                self.compress(false);
                self.filled = 0;
            }
            let n = (128 - self.filled).min(data.len());
            self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
        }
    }

    fn finish(mut self, out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.out_len);
        self.counter += self.filled as u128;
        self.buf[self.filled..].fill(0);
        self.compress(true);
        let mut bytes = [0u8; 64];
        for (i, w) in self.h.iter().enumerate() {
            bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        out.copy_from_slice(&bytes[..self.out_len]);
    }
}

fn blake2b(out: &mut [u8], parts: &[&[u8]]) {
    let mut h = Blake2b::new(out.len());
    for p in parts {
        h.update(p);
    }
    h.finish(out);
}

/// H' of RFC 9106 section 3.3: a hash of any output length built from BLAKE2b.
fn blake2b_long(out: &mut [u8], parts: &[&[u8]]) {
    let len = (out.len() as u32).to_le_bytes();
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
    all.push(&len);
    all.extend_from_slice(parts);
    if out.len() <= 64 {
        blake2b(out, &all);
        return;
    }
    let mut v = [0u8; 64];
    blake2b(&mut v, &all);
    out[..32].copy_from_slice(&v[..32]);
    let mut at = 32;
    while out.len() - at > 64 {
        let prev = v;
        blake2b(&mut v, &[&prev]);
        out[at..at + 32].copy_from_slice(&v[..32]);
        at += 32;
    }
    let prev = v;
    blake2b(&mut out[at..], &[&prev[..]]);
}

const WORDS: usize = 128; // u64 words in a 1 KiB block
type Block = [u64; WORDS];
const SYNC_POINTS: u32 = 4;

#[inline(always)]
fn mul_lo(a: u64, b: u64) -> u64 {
    (a & 0xffff_ffff).wrapping_mul(b & 0xffff_ffff)
}

/// Four words, one of each of four G applications that run side by side (the lanes of one
/// 256-bit register when compiled for AVX2).
type Lanes = [u64; 4];

/// The BlaMka G of RFC 9106 section 3.6, four at once: G(a[i], b[i], c[i], d[i]) for each i.
/// Written lane by lane so that LLVM turns each line into one vector instruction (vpmuludq for
/// the 32x32-bit products) in the AVX2 copy of the passes (fill_memory).
#[inline(always)]
fn g4(a: &mut Lanes, b: &mut Lanes, c: &mut Lanes, d: &mut Lanes) {
    for i in 0..4 {
        a[i] = a[i].wrapping_add(b[i]).wrapping_add(mul_lo(a[i], b[i]).wrapping_mul(2));
    }
    for i in 0..4 {
        d[i] = (d[i] ^ a[i]).rotate_right(32);
    }
    for i in 0..4 {
        c[i] = c[i].wrapping_add(d[i]).wrapping_add(mul_lo(c[i], d[i]).wrapping_mul(2));
    }
    for i in 0..4 {
        b[i] = (b[i] ^ c[i]).rotate_right(24);
    }
    for i in 0..4 {
        a[i] = a[i].wrapping_add(b[i]).wrapping_add(mul_lo(a[i], b[i]).wrapping_mul(2));
    }
    for i in 0..4 {
        d[i] = (d[i] ^ a[i]).rotate_right(16);
    }
    for i in 0..4 {
        c[i] = c[i].wrapping_add(d[i]).wrapping_add(mul_lo(c[i], d[i]).wrapping_mul(2));
    }
    for i in 0..4 {
        b[i] = (b[i] ^ c[i]).rotate_right(63);
    }
}

/// The permutation P on 16 words v0..v15 (RFC 9106 section 3.6): G on the columns (0,4,8,12)
/// .. (3,7,11,15), then on the diagonals (0,5,10,15), (1,6,11,12), (2,7,8,13), (3,4,9,14).
/// The rows a = v0..3, b = v4..7, c = v8..11, d = v12..15 are four-lane values; the
/// diagonals are the columns once b, c and d are rotated by one, two and three lanes.
#[inline(always)]
fn permute(v: &mut [u64; 16]) {
    let mut a: Lanes = [v[0], v[1], v[2], v[3]];
    let mut b: Lanes = [v[4], v[5], v[6], v[7]];
    let mut c: Lanes = [v[8], v[9], v[10], v[11]];
    let mut d: Lanes = [v[12], v[13], v[14], v[15]];
    g4(&mut a, &mut b, &mut c, &mut d);
    let mut b2: Lanes = [b[1], b[2], b[3], b[0]];
    let mut c2: Lanes = [c[2], c[3], c[0], c[1]];
    let mut d2: Lanes = [d[3], d[0], d[1], d[2]];
    g4(&mut a, &mut b2, &mut c2, &mut d2);
    *v = [
        a[0], a[1], a[2], a[3],
        b2[3], b2[0], b2[1], b2[2],
        c2[2], c2[3], c2[0], c2[1],
        d2[1], d2[2], d2[3], d2[0],
    ];
}

/// next = G(prev, reference), or next ^= G(prev, reference) (passes after the first, v1.3).
#[inline(always)]
fn fill_block(prev: &Block, reference: &Block, next: &mut Block, xor_into: bool) {
    let mut r = [0u64; WORDS];
    for i in 0..WORDS {
        r[i] = prev[i] ^ reference[i];
    }
    let mut tmp = r;
    if xor_into {
        for i in 0..WORDS {
            tmp[i] ^= next[i];
        }
    }
    // Rows: eight runs of 16 consecutive words; then columns: word pairs 2i, 2i+1 of every
    // row (the 16-byte registers of the RFC's 8x8 matrix).
    for row in 0..8 {
        let b = 16 * row;
        let mut v: [u64; 16] = r[b..b + 16].try_into().unwrap();
        permute(&mut v);
        r[b..b + 16].copy_from_slice(&v);
    }
    for col in 0..8 {
        let b = 2 * col;
        let mut v = [0u64; 16];
        for k in 0..8 {
            v[2 * k] = r[b + 16 * k];
            v[2 * k + 1] = r[b + 16 * k + 1];
        }
        permute(&mut v);
        for k in 0..8 {
            r[b + 16 * k] = v[2 * k];
            r[b + 16 * k + 1] = v[2 * k + 1];
        }
    }
    for i in 0..WORDS {
        next[i] = tmp[i] ^ r[i];
    }
}

/// The passes over memory (RFC 9106 section 3.4): the whole cost of the KDF. Compiled twice:
/// for AVX2 (picked at run time), where g4's lanes become 256-bit registers, and for the
/// baseline CPU.
fn fill_memory(memory: &mut [Block], t: u32, lanes: usize, lane_len: usize, segment_len: usize, blocks: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && !BASELINE_ONLY.with(|b| b.get()) {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { fill_memory_avx2(memory, t, lanes, lane_len, segment_len, blocks) };
    }
    fill_memory_any(memory, t, lanes, lane_len, segment_len, blocks)
}

thread_local! {
    /// Tests set it to check the baseline copy of the passes on a CPU with AVX2.
    static BASELINE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_memory_avx2(memory: &mut [Block], t: u32, lanes: usize, lane_len: usize, segment_len: usize, blocks: usize) {
    fill_memory_any(memory, t, lanes, lane_len, segment_len, blocks)
}

#[inline(always)]
fn fill_memory_any(memory: &mut [Block], t: u32, lanes: usize, lane_len: usize, segment_len: usize, blocks: usize) {
    let zero: Block = [0u64; WORDS];
    for pass in 0..t {
        for slice in 0..SYNC_POINTS {
            for lane in 0..lanes {
                let independent = pass == 0 && slice < SYNC_POINTS / 2;
                let mut input: Block = [0u64; WORDS];
                let mut addresses: Block = [0u64; WORDS];
                let next_addresses = |input: &mut Block, addresses: &mut Block| {
                    input[6] += 1;
                    let mut once = [0u64; WORDS];
                    fill_block(&zero, input, &mut once, false);
                    fill_block(&zero, &once, addresses, false);
                };
                if independent {
                    input[0] = pass as u64;
                    input[1] = lane as u64;
                    input[2] = slice as u64;
                    input[3] = blocks as u64;
                    input[4] = t as u64;
                    input[5] = 2;
                }
                let start = if pass == 0 && slice == 0 { 2 } else { 0 };
                if independent && start == 2 {
                    next_addresses(&mut input, &mut addresses);
                }
                for index in start..segment_len {
                    let column = slice as usize * segment_len + index;
                    let current = lane * lane_len + column;
                    let previous = if column == 0 { lane * lane_len + lane_len - 1 } else { current - 1 };
                    let pseudo = if independent {
                        if index % WORDS == 0 {
                            next_addresses(&mut input, &mut addresses);
                        }
                        addresses[index % WORDS]
                    } else {
                        memory[previous][0]
                    };
                    let ref_lane = if pass == 0 && slice == 0 { lane } else { ((pseudo >> 32) % lanes as u64) as usize };
                    let same_lane = ref_lane == lane;
                    // The reference area (RFC 9106 section 3.4.1.2), then the J1 mapping.
                    let area: u64 = if pass == 0 {
                        if slice == 0 {
                            index as u64 - 1
                        } else if same_lane {
                            (slice as usize * segment_len + index - 1) as u64
                        } else {
                            (slice as usize * segment_len) as u64 - if index == 0 { 1 } else { 0 }
                        }
                    } else if same_lane {
                        (lane_len - segment_len + index - 1) as u64
                    } else {
                        (lane_len - segment_len) as u64 - if index == 0 { 1 } else { 0 }
                    };
                    let j1 = pseudo & 0xffff_ffff;
                    let x = (j1 * j1) >> 32;
                    let relative = area - 1 - ((area * x) >> 32);
                    let start_pos = if pass == 0 || slice == SYNC_POINTS - 1 { 0 } else { (slice as u64 + 1) * segment_len as u64 };
                    let ref_index = ((start_pos + relative) % lane_len as u64) as usize;
                    let reference = ref_lane * lane_len + ref_index;
                    // The reference area never holds the block being written (nor, in its own
                    // lane, the previous one), so the three are distinct blocks; checked, since
                    // the borrows below rely on it.
                    assert!(current != previous && current != reference);
                    let base = memory.as_mut_ptr();
                    // SAFETY: all three indexes are < blocks, and current is neither of the others.
                    unsafe { fill_block(&*base.add(previous), &*base.add(reference), &mut *base.add(current), pass > 0) };
                }
            }
        }
    }
}

/// The KDF's memory: on Linux an anonymous mapping, 2 MiB aligned, asked to be backed by
/// transparent huge pages (madvise(MADV_HUGEPAGE); honoured when THP is "always" or
/// "madvise"), so the 19 MiB of the default slot take ten page faults rather than ~4,900 and
/// the random reads of the passes miss the TLB far less. Measured on the project's VM (THP
/// "madvise"), CPU time of the default slot, medians of 20: 33-34 ms with a Vec (7-9 ms of
/// it in the kernel), 24-26 ms this way. Zero-filled by the kernel, unmapped on drop. The
/// cost is the same work, not less of it: the parameters and the bytes are unchanged (the
/// reference vectors below). Elsewhere, or if the mapping fails, a zeroed Vec.
struct Arena {
    ptr: *mut Block,
    len: usize,
    /// The mapping (start, length) to unmap; length 0 when `_fallback` holds the blocks.
    base: usize,
    mapped: usize,
    _fallback: Vec<Block>,
}

#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::c_void;
    extern "C" {
        pub fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut c_void;
        pub fn munmap(addr: *mut c_void, len: usize) -> i32;
        pub fn madvise(addr: *mut c_void, len: usize, advice: i32) -> i32;
    }
    pub const PROT_READ: i32 = 1;
    pub const PROT_WRITE: i32 = 2;
    pub const MAP_PRIVATE: i32 = 2;
    pub const MAP_ANONYMOUS: i32 = 0x20;
    pub const MADV_HUGEPAGE: i32 = 14;
}

const HUGE: usize = 2 << 20;

impl Arena {
    fn new(blocks: usize) -> Arena {
        let bytes = blocks * std::mem::size_of::<Block>();
        #[cfg(target_os = "linux")]
        {
            // Over-map by one huge page, so that an aligned start can be picked inside.
            let mapped = bytes + HUGE;
            // SAFETY: a fresh private anonymous mapping; checked for failure (MAP_FAILED = -1).
            let base = unsafe { sys::mmap(std::ptr::null_mut(), mapped, sys::PROT_READ | sys::PROT_WRITE, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS, -1, 0) };
            if base as isize != -1 && !base.is_null() {
                let aligned = (base as usize + HUGE - 1) & !(HUGE - 1);
                // SAFETY: [aligned, aligned + bytes) lies inside the mapping. A failed madvise
                // only means small pages.
                unsafe { sys::madvise(aligned as *mut _, bytes, sys::MADV_HUGEPAGE) };
                return Arena { ptr: aligned as *mut Block, len: blocks, base: base as usize, mapped, _fallback: Vec::new() };
            }
        }
        let mut fallback = vec![[0u64; WORDS]; blocks];
        Arena { ptr: fallback.as_mut_ptr(), len: blocks, base: 0, mapped: 0, _fallback: fallback }
    }

    fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: ptr points at len zero-initialised blocks owned by self (mapping or Vec).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if self.mapped > 0 {
            // SAFETY: exactly the mapping made in new(); nothing borrows it any more.
            unsafe { sys::munmap(self.base as *mut _, self.mapped) };
        }
    }
}

fn block_from_bytes(bytes: &[u8]) -> Block {
    core::array::from_fn(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap()))
}

/// Why a parameter set is refused (the slot reader bounds them before calling).
#[derive(Debug, PartialEq, Eq)]
pub struct BadParams(pub &'static str);

/// Argon2id(password, salt) with memory `m_kib` KiB, `t` passes, `p` lanes; `out.len()` ≥ 4.
pub fn argon2id(password: &[u8], salt: &[u8], m_kib: u32, t: u32, p: u32, out: &mut [u8]) -> Result<(), BadParams> {
    if !(1..=0x00ff_ffff).contains(&p) {
        return Err(BadParams("lanes out of range"));
    }
    if t < 1 {
        return Err(BadParams("passes must be at least 1"));
    }
    if (m_kib as u64) < 8 * p as u64 {
        return Err(BadParams("memory must be at least 8 KiB per lane"));
    }
    if salt.len() < 8 || out.len() < 4 {
        return Err(BadParams("salt under 8 bytes or output under 4 bytes"));
    }
    let lanes = p as usize;
    let blocks = (m_kib / (SYNC_POINTS * p) * (SYNC_POINTS * p)) as usize;
    let lane_len = blocks / lanes;
    let segment_len = lane_len / SYNC_POINTS as usize;

    let mut h0 = [0u8; 72];
    let le = |x: u32| x.to_le_bytes();
    blake2b(
        &mut h0[..64],
        &[
            &le(p),
            &le(out.len() as u32),
            &le(m_kib),
            &le(t),
            &le(0x13),
            &le(2), // Argon2id
            &le(password.len() as u32),
            password,
            &le(salt.len() as u32),
            salt,
            &le(0), // no secret
            &le(0), // no associated data
        ],
    );

    let mut arena = Arena::new(blocks);
    let memory = arena.blocks();
    let mut bytes = [0u8; 1024];
    for lane in 0..lanes {
        for first in 0..2u32 {
            h0[64..68].copy_from_slice(&le(first));
            h0[68..72].copy_from_slice(&le(lane as u32));
            blake2b_long(&mut bytes, &[&h0]);
            memory[lane * lane_len + first as usize] = block_from_bytes(&bytes);
        }
    }

    fill_memory(memory, t, lanes, lane_len, segment_len, blocks);

    let mut last: Block = memory[lane_len - 1];
    for lane in 1..lanes {
        let b = &memory[lane * lane_len + lane_len - 1];
        for i in 0..WORDS {
            last[i] ^= b[i];
        }
    }
    for (i, w) in last.iter().enumerate() {
        bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    blake2b_long(out, &[&bytes]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn run(m: u32, t: u32, p: u32) -> String {
        let mut out = [0u8; 32];
        argon2id(b"password", b"somesalt", m, t, p, &mut out).unwrap();
        hex(&out)
    }

    #[test]
    fn blake2b_matches_rfc7693() {
        // RFC 7693 appendix A: BLAKE2b-512("abc").
        let mut out = [0u8; 64];
        blake2b(&mut out, &[b"abc"]);
        assert_eq!(
            hex(&out),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
        // Split input across the 128-byte boundary gives the same digest as one piece.
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        blake2b(&mut a, &[&data]);
        blake2b(&mut b, &[&data[..128], &data[128..129], &data[129..]]);
        assert_eq!(a, b);
    }

    #[test]
    fn argon2id_matches_the_reference_vectors() {
        // phc-winner-argon2 src/test.c, Argon2id version 0x13, password "password", salt "somesalt".
        // Both copies of the passes: the AVX2 one (where the CPU has it) and the baseline one.
        for baseline in [false, true] {
            BASELINE_ONLY.with(|b| b.set(baseline));
            assert_eq!(run(256, 2, 1), "9dfeb910e80bad0311fee20f9c0e2b12c17987b4cac90c2ef54d5b3021c68bfe");
            assert_eq!(run(256, 2, 2), "6d093c501fd5999645e0ea3bf620d7b8be7fd2db59c20d9fff9539da2bf57037");
            assert_eq!(run(65536, 2, 1), "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7");
        }
        BASELINE_ONLY.with(|b| b.set(false));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut out = [0u8; 32];
        assert!(argon2id(b"pw", b"somesalt", 7, 1, 1, &mut out).is_err());
        assert!(argon2id(b"pw", b"somesalt", 64, 0, 1, &mut out).is_err());
        assert!(argon2id(b"pw", b"short", 64, 1, 1, &mut out).is_err());
        assert!(argon2id(b"pw", b"somesalt", 64, 1, 0, &mut out).is_err());
    }
}
