//! CSV cells that a spreadsheet opens as text: shared by every CSV export (the audit log, lab
//! members).

/// `s` with a leading `'` when a spreadsheet would read it as a formula (it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return); shared by every CSV export.
pub fn defuse_formula(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}
