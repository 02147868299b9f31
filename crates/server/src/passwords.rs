//! Passwords: argon2id at OWASP's parameters, hashed off the async threads, with at most a few
//! hashes at a time so that a flood of logins cannot starve the other requests of CPU.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use cryowarden_core::limits;
use tokio::sync::Semaphore;

use crate::error::StoreError;

/// Openwall's public-domain list of common passwords (John the Ripper's `password.lst`).
const COMMON: &str = include_str!("../data/common-passwords.txt");

static COMMON_SET: LazyLock<std::collections::HashSet<String>> = LazyLock::new(|| {
    COMMON
        .lines()
        .filter(|l| !l.starts_with("#!") && !l.is_empty())
        .map(str::to_lowercase)
        .collect()
});

/// Whether `password` is a common one, or a common one with digits and punctuation appended,
/// or one repeated ("passwordpassword").
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    let set = &*COMMON_SET;
    if set.contains(&lower) {
        return true;
    }
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    if stem.len() >= 4 && set.contains(stem) {
        return true;
    }
    if stem.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    for unit in 1..=lower.len() / 2 {
        if lower.len().is_multiple_of(unit) && lower.is_char_boundary(unit) {
            let (head, _) = lower.split_at(unit);
            if head.repeat(lower.len() / unit) == lower && (unit < 4 || set.contains(head)) {
                return true;
            }
        }
    }
    false
}

/// The password policy: length 12..=256 characters, no composition rules, not common.
pub fn check_policy(password: &str) -> Result<(), StoreError> {
    check_policy_min(password, limits::PASSWORD_MIN)
}

/// The password policy with the minimum length the admin console sets (authentication).
pub fn check_policy_min(password: &str, min: usize) -> Result<(), StoreError> {
    let n = password.chars().count();
    if n < min {
        return Err(StoreError::invalid(
            "password",
            format!("must be at least {min} characters"),
        ));
    }
    if n > limits::PASSWORD_MAX {
        return Err(StoreError::invalid(
            "password",
            format!("must be at most {} characters", limits::PASSWORD_MAX),
        ));
    }
    if is_common(password) {
        return Err(StoreError::invalid(
            "password",
            "is too common: choose a longer passphrase of unrelated words",
        ));
    }
    Ok(())
}

/// Hashes and verifies passwords on the blocking pool, a bounded number at a time.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    params: Params,
}

impl Hasher {
    /// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
    pub fn new(concurrency: usize) -> Hasher {
        let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            params,
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub async fn hash(&self, password: String) -> Result<String, StoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
        .map_err(|e| StoreError::Internal(e.to_string()))
    }

    /// Verifies `password` against a stored hash; `None` (no password set) verifies against a
    /// dummy hash so that timing does not tell which accounts exist.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, StoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
            let parsed =
                PasswordHash::new(&stored).map_err(|e| StoreError::Internal(e.to_string()))?;
            Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }
}

static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"no password is set for this account", &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_and_their_variants_are_refused() {
        for pw in [
            "password1234",
            "Password1234!",
            "qwertyqwerty",
            "123456789012",
            "abcabcabcabc",
            "letmeinletmein",
        ] {
            assert!(check_policy(pw).is_err(), "{pw} should be refused");
        }
        assert!(check_policy("short").is_err());
        assert!(check_policy(&"x".repeat(257)).is_err());
        for pw in [
            "correct horse battery staple",
            "grid-lens-argon-42",
            "ΩmegaΔeltaψ1234",
        ] {
            assert!(check_policy(pw).is_ok(), "{pw} should pass");
        }
    }
}
