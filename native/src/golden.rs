//! test/fixtures/golden-v1.json, the chunker v1 golden vectors written from the TypeScript
//! engine (scripts/gen-golden.mjs), must be reproduced exactly by this engine. The format is
//! in docs/chunking.md, "Golden vectors". serde_json is not among Debian's crates, hence the
//! small JSON reader below.

use crate::chunker::{Batch, Chunker, Threads};
use crate::params::Params;
use std::collections::BTreeMap;

// Booleans are parsed for completeness; the fixture has none to read.
#[allow(dead_code)]
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    fn get(&self, k: &str) -> &Json {
        match self {
            Json::Obj(m) => m.get(k).unwrap_or_else(|| panic!("missing key {k}")),
            _ => panic!("not an object looking up {k}"),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }
    fn usize(&self) -> usize {
        self.num() as usize
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(self.s[self.i] as char, c as char, "at byte {}", self.i);
        self.i += 1;
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(m);
                }
                loop {
                    self.ws();
                    let k = match self.value() {
                        Json::Str(k) => k,
                        other => panic!("object key {other:?}"),
                    };
                    self.eat(b':');
                    let v = self.value();
                    m.insert(k, v);
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b'}' => return Json::Obj(m),
                        c => panic!("unexpected {:?} at {}", c as char, self.i - 1),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(a);
                }
                loop {
                    a.push(self.value());
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b']' => return Json::Arr(a),
                        c => panic!("unexpected {:?} at {}", c as char, self.i - 1),
                    }
                }
            }
            b'"' => {
                self.i += 1;
                let start = self.i;
                // The fixture's strings are hex digits and ASCII text without escapes.
                while self.s[self.i] != b'"' {
                    assert_ne!(self.s[self.i], b'\\', "escapes are not supported");
                    self.i += 1;
                }
                self.i += 1;
                Json::Str(String::from_utf8(self.s[start..self.i - 1].to_vec()).unwrap())
            }
            b'n' => self.word("null", Json::Null),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                Json::Num(t.parse().unwrap_or_else(|_| panic!("bad number {t:?}")))
            }
        }
    }
    fn word(&mut self, w: &str, v: Json) -> Json {
        assert_eq!(&self.s[self.i..self.i + w.len()], w.as_bytes());
        self.i += w.len();
        v
    }
}

fn parse(text: &str) -> Json {
    let mut r = Reader { s: text.as_bytes(), i: 0 };
    let v = r.value();
    r.ws();
    assert_eq!(r.i, r.s.len(), "trailing bytes");
    v
}

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0);
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn xof(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

fn feed(c: &mut Chunker, data: &[u8], cuts: &[usize], threads: Threads) -> Batch {
    let mut all = Batch::default();
    let mut from = 0;
    for &cut in cuts.iter().filter(|&&c| c < data.len()).chain(std::iter::once(&data.len())) {
        let b = c.push_with(&data[from..cut], cut == data.len(), threads);
        all.lengths.extend(b.lengths);
        all.hashes.extend(b.hashes);
        from = cut;
    }
    all
}

#[test]
fn reproduces_golden_v1() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../test/fixtures/golden-v1.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let golden = parse(&text);
    assert_eq!(golden.get("version").num(), 1.0);
    let sets = golden.get("sets").arr();
    assert!(sets.len() >= 3, "expected several parameter sets");
    let mut keyed_sets = 0;
    for (n, set) in sets.iter().enumerate() {
        let p = set.get("params");
        let params = Params::from_f64(
            p.get("minSize").num(),
            p.get("avgSize").num(),
            p.get("maxSize").num(),
            p.get("normalization").num(),
        )
        .unwrap();
        let key: Option<[u8; 32]> = match set.get("key") {
            Json::Null => None,
            k => Some(unhex(k.str()).try_into().expect("a 32-byte key")),
        };
        keyed_sets += key.is_some() as usize;
        let input = set.get("input");
        assert_eq!(input.get("kind").str(), "blake3-xof");
        let data = xof(input.get("seed").str(), input.get("length").usize());
        let want = set.get("chunks").arr();

        let slicings: [&[usize]; 3] = [&[], &[1, 100_000, 1 << 20], &[4095, 4096, 65_537, 300_000, 1_500_001]];
        for cuts in slicings {
            for threads in [Threads::One, Threads::Two] {
                let got = feed(&mut Chunker::new(params, key), &data, cuts, threads);
                assert_eq!(got.len(), want.len(), "set {n}: chunk count ({threads:?}, cuts {cuts:?})");
                let mut offset = 0;
                for (i, c) in want.iter().enumerate() {
                    let len = got.lengths[i] as usize;
                    assert_eq!(offset, c.get("offset").usize(), "set {n} chunk {i} offset");
                    assert_eq!(len, c.get("length").usize(), "set {n} chunk {i} length");
                    assert_eq!(&got.hashes[32 * i..32 * i + 32], &unhex(c.get("hash").str())[..], "set {n} chunk {i} hash");
                    offset += len;
                }
                assert_eq!(offset, data.len());
            }
        }
    }
    assert!(keyed_sets > 0, "the fixture should pin keyed mode too");
}

/// test/fixtures/golden-keyed-gear.json (scripts/gen-golden-keyed-gear.mjs): the chunker with
/// keyed gear tables, given the table bytes the TypeScript side derived (docs/encryption.md).
#[test]
fn reproduces_golden_keyed_gear() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../test/fixtures/golden-keyed-gear.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let golden = parse(&text);
    assert_eq!(golden.get("version").num(), 1.0);
    let sets = golden.get("sets").arr();
    assert!(sets.len() >= 2);
    for (n, set) in sets.iter().enumerate() {
        let p = set.get("params");
        let bytes = unhex(set.get("gear").str());
        assert_eq!(bytes.len(), 2048);
        let mut table = [0u64; 256];
        for (i, w) in bytes.chunks_exact(8).enumerate() {
            table[i] = u64::from_le_bytes(w.try_into().unwrap());
        }
        let params = Params::from_f64(p.get("minSize").num(), p.get("avgSize").num(), p.get("maxSize").num(), p.get("normalization").num())
            .unwrap()
            .with_gear(crate::gear::intern(table));
        let key: Option<[u8; 32]> = match set.get("key") {
            Json::Null => None,
            k => Some(unhex(k.str()).try_into().expect("a 32-byte key")),
        };
        let input = set.get("input");
        let data = xof(input.get("seed").str(), input.get("length").usize());
        let want = set.get("chunks").arr();
        // The reference loop with the same table agrees with the fixture.
        let reference = crate::chunker::reference_lengths(&params, &data);
        assert_eq!(reference.len(), want.len(), "set {n}: reference chunk count");
        for cuts in [&[][..], &[1, 4097, 100_000][..], &[65_535, 65_536, 300_001][..]] {
            for threads in [Threads::One, Threads::Two] {
                let got = feed(&mut Chunker::new(params, key), &data, cuts, threads);
                assert_eq!(got.len(), want.len(), "set {n}: chunk count ({threads:?}, cuts {cuts:?})");
                let mut offset = 0;
                for (i, c) in want.iter().enumerate() {
                    let len = got.lengths[i] as usize;
                    assert_eq!(offset, c.get("offset").usize(), "set {n} chunk {i} offset");
                    assert_eq!(len, c.get("length").usize(), "set {n} chunk {i} length");
                    assert_eq!(len, reference[i], "set {n} chunk {i} reference length");
                    assert_eq!(&got.hashes[32 * i..32 * i + 32], &unhex(c.get("hash").str())[..], "set {n} chunk {i} hash");
                    offset += len;
                }
            }
        }
        // And the table changes the cuts: the fixed table cuts the same input elsewhere.
        let plain = Params::from_f64(p.get("minSize").num(), p.get("avgSize").num(), p.get("maxSize").num(), p.get("normalization").num()).unwrap();
        assert_ne!(crate::chunker::reference_lengths(&plain, &data), reference, "set {n}: keyed cuts equal the unkeyed ones");
    }
}
