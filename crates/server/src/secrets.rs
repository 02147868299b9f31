//! Random tokens and their stored hashes. A token is shown once; only its SHA-256 is kept.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A secret shown to a person once. `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A fresh token: `prefix` and 256 random bits, URL-safe.
    pub fn generate(prefix: &str) -> Secret {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Secret(format!("{prefix}{}", hex::encode(bytes)))
    }
    pub fn from_string(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The stored form of a token: hex SHA-256. Tokens carry 256 bits of entropy, so a fast hash
/// is enough (no password-style stretching needed).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub const SESSION_PREFIX: &str = "cws_";
pub const API_TOKEN_PREFIX: &str = "cwt_";
pub const REGISTER_PREFIX: &str = "cwr_";
pub const RESET_PREFIX: &str = "cwp_";
pub const BOOTSTRAP_PREFIX: &str = "cwb_";
