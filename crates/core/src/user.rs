use crate::names::named_enum;

named_enum! {
    /// Where a user's account stands.
    pub enum UserStatus {
        /// Created by an admin; waits for the user to register with the token.
        Invited = "invited",
        Active = "active",
        Deactivated = "deactivated",
    }
}

/// Limits on what a user record may hold; the API refuses anything outside them.
pub mod limits {
    pub const USERNAME_MAX: usize = 64;
    pub const EMAIL_MAX: usize = 254;
    pub const NAME_MAX: usize = 100;
    pub const PASSWORD_MIN: usize = 12;
    pub const PASSWORD_MAX: usize = 256;
    pub const PRIORITY_MAX: i64 = 100;
}

/// Why a username is refused, if it is: 1 to 64 of `a-z A-Z 0-9 . _ -`, starting with a letter
/// or digit (so that it can also name a Unix account or a directory safely).
pub fn username_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.chars().count() > limits::USERNAME_MAX {
        return Some("must be at most 64 characters");
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Some("must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Some("may hold only letters, digits, '.', '_' and '-'");
    }
    None
}
