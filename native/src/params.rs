//! Chunker v1 parameters and their rules (docs/chunking.md, "Parameters" and "Masks").

use std::fmt;

/// Chunker version these parameters and the cut-point code define. On disk: DO NOT CHANGE.
pub const CHUNKER_VERSION: u32 = 1;

pub const MIN_AVG_SIZE: u64 = 256;
pub const MAX_AVG_SIZE: u64 = 16 << 20;
pub const MIN_MIN_SIZE: u64 = 64;
pub const MAX_MAX_SIZE: u64 = 64 << 20;
pub const MAX_NORMALIZATION: u64 = 3;
pub const DEFAULT_NORMALIZATION: u32 = 2;

/// A parameter that breaks its rule. The message is what JS sees, so it names the parameter,
/// the value and the rule, as docs/chunking.md requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub min_size: usize,
    pub avg_size: usize,
    pub max_size: usize,
    pub normalization: u32,
    /// Strict mask, used while the chunk index is below avg_size.
    pub mask_s: u64,
    /// Loose mask, used from avg_size on.
    pub mask_l: u64,
    /// The gear table: gear::GEAR, or a keyed one (gear::intern).
    pub gear: &'static crate::scan::Gear,
}

/// `k` one-bits ending at bit 62. Bit 63 stays clear so that masks shifted left by the
/// unrolled loops lose nothing.
pub const fn mask(k: u32) -> u64 {
    ((1u64 << k) - 1) << (63 - k)
}

fn fmt_value(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 9.007_199_254_740_992e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// JS hands numbers over as doubles; anything that is not an exact non-negative integer is
/// refused here rather than truncated, so `avgSize: 65536.5` cannot silently mean 65536.
fn integer(name: &str, v: f64, rule: &str) -> Result<u64, ParamError> {
    if v.is_finite() && v >= 0.0 && v == v.trunc() && v <= 9.007_199_254_740_991e15 {
        Ok(v as u64)
    } else {
        Err(ParamError(format!(
            "{name} = {}: must be an integer, {rule}",
            fmt_value(v)
        )))
    }
}

impl Params {
    /// Validates in the order of the table in docs/chunking.md (avgSize first, since the
    /// other rules are stated relative to it).
    pub fn from_f64(min: f64, avg: f64, max: f64, nc: f64) -> Result<Params, ParamError> {
        const AVG_RULE: &str = "a power of two, 256 <= avgSize <= 16777216 (16 MiB)";
        let avg_u = integer("avgSize", avg, AVG_RULE)?;
        if !(MIN_AVG_SIZE..=MAX_AVG_SIZE).contains(&avg_u) || !avg_u.is_power_of_two() {
            return Err(ParamError(format!("avgSize = {avg_u}: must be {AVG_RULE}")));
        }
        let min_rule = format!("64 <= minSize <= avgSize ({avg_u})");
        let min_u = integer("minSize", min, &min_rule)?;
        if !(MIN_MIN_SIZE..=avg_u).contains(&min_u) {
            return Err(ParamError(format!("minSize = {min_u}: must be {min_rule}")));
        }
        let max_rule = format!("avgSize ({avg_u}) <= maxSize <= 67108864 (64 MiB)");
        let max_u = integer("maxSize", max, &max_rule)?;
        if !(avg_u..=MAX_MAX_SIZE).contains(&max_u) {
            return Err(ParamError(format!("maxSize = {max_u}: must be {max_rule}")));
        }
        let bits = avg_u.trailing_zeros() as u64;
        let nc_rule = format!("0 <= normalization <= 3 and log2(avgSize) - normalization >= 1 (log2(avgSize) = {bits})");
        let nc_u = integer("normalization", nc, &nc_rule)?;
        if nc_u > MAX_NORMALIZATION || bits < nc_u + 1 {
            return Err(ParamError(format!("normalization = {nc_u}: must be {nc_rule}")));
        }
        let (bits, nc) = (bits as u32, nc_u as u32);
        Ok(Params {
            min_size: min_u as usize,
            avg_size: avg_u as usize,
            max_size: max_u as usize,
            normalization: nc,
            mask_s: mask(bits + nc),
            mask_l: mask(bits - nc),
            gear: &crate::gear::GEAR,
        })
    }

    /// The same parameters with another gear table (a keyed chunker).
    pub fn with_gear(self, gear: &'static crate::scan::Gear) -> Params {
        Params { gear, ..self }
    }

    pub fn new(min: usize, avg: usize, max: usize, nc: u32) -> Result<Params, ParamError> {
        Params::from_f64(min as f64, avg as f64, max as f64, nc as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_the_spec() {
        assert_eq!(mask(1), 1 << 62);
        assert_eq!(mask(18), 0x7fff_e000_0000_0000);
        let p = Params::new(16 << 10, 64 << 10, 256 << 10, 2).unwrap();
        assert_eq!(p.mask_s, mask(18));
        assert_eq!(p.mask_l, mask(14));
        assert_eq!(p.mask_s.count_ones(), 18);
        assert_eq!(p.mask_s >> 63, 0);
        // Loose bits are a subset of strict bits: a strict hit is always a loose hit.
        assert_eq!(p.mask_s & p.mask_l, p.mask_l);
    }

    #[test]
    fn accepts_the_edges() {
        assert!(Params::new(64, 256, 256, 0).is_ok());
        assert!(Params::new(64, 256, 256, 3).is_ok());
        assert!(Params::new(16 << 20, 16 << 20, 64 << 20, 3).is_ok());
        assert!(Params::new(256, 256, 64 << 20, 2).is_ok());
    }

    fn err(min: f64, avg: f64, max: f64, nc: f64) -> String {
        Params::from_f64(min, avg, max, nc).unwrap_err().0
    }

    #[test]
    fn refuses_each_rule_naming_parameter_value_and_rule() {
        let m = err(16384.0, 65535.0, 262144.0, 2.0);
        assert!(m.starts_with("avgSize = 65535: must be a power of two"), "{m}");
        let m = err(64.0, 128.0, 256.0, 2.0);
        assert!(m.contains("avgSize = 128") && m.contains("256 <= avgSize"), "{m}");
        let m = err(64.0, (32 << 20) as f64, (64 << 20) as f64, 2.0);
        assert!(m.contains("avgSize = 33554432"), "{m}");
        let m = err(63.0, 256.0, 256.0, 2.0);
        assert!(m.starts_with("minSize = 63: must be 64 <= minSize <= avgSize (256)"), "{m}");
        let m = err(512.0, 256.0, 1024.0, 2.0);
        assert!(m.starts_with("minSize = 512"), "{m}");
        let m = err(64.0, 256.0, 255.0, 2.0);
        assert!(m.starts_with("maxSize = 255: must be avgSize (256) <= maxSize"), "{m}");
        let m = err(64.0, 256.0, (64 << 20) as f64 + 1.0, 2.0);
        assert!(m.starts_with("maxSize = 67108865"), "{m}");
        let m = err(64.0, 256.0, 256.0, 4.0);
        assert!(m.starts_with("normalization = 4: must be 0 <= normalization <= 3"), "{m}");
        let m = err(64.0, 256.0, 256.0, 1.5);
        assert!(m.starts_with("normalization = 1.5: must be an integer"), "{m}");
        let m = err(f64::NAN, 256.0, 256.0, 1.0);
        assert!(m.starts_with("minSize = NaN: must be an integer"), "{m}");
        let m = err(-64.0, 256.0, 256.0, 1.0);
        assert!(m.starts_with("minSize = -64: must be an integer"), "{m}");
        let m = err(64.0, 256.0, f64::INFINITY, 1.0);
        assert!(m.starts_with("maxSize = inf: must be an integer"), "{m}");
    }
}
