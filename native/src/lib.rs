//! chunkyard native core: the FastCDC chunker v1 of docs/chunking.md and batched BLAKE3,
//! exposed to Node through the plain N-API C interface (napi.rs).
//!
//! Everything but `napi` is plain Rust with no reference to N-API symbols, so `cargo test`
//! links without a Node binary.

pub mod argon2;
pub mod chunker;
pub mod codec;
pub mod delta;
pub mod fused;
pub mod gcm;
pub mod gear;
#[cfg(test)]
mod golden;
pub mod hash;
pub mod hkdf;
pub mod multi;
pub mod params;
pub mod scan;
pub mod seal;
#[doc(hidden)]
pub mod testutil;

mod sparse;
#[cfg(not(test))]
mod napi;

/// What `version()` returns to JS.
pub const VERSION: &str = concat!("chunkyard-native ", env!("CARGO_PKG_VERSION"), " chunker-v1 keyed-gear chunk-seal-v2 argon2id object-seal");
