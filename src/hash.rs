//! Short, stable content hashes (SHA-256 prefixes) for names and change detection.

use sha2::{Digest, Sha256};

/// First 8 hex digits of the SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..4])
}

/// First 16 hex digits of the SHA-256 of `text`.
pub fn content_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..8])
}

/// The first 16 bytes of the SHA-256 of `text`.
pub fn digest16(text: &str) -> [u8; 16] {
    let d = Sha256::digest(text.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
