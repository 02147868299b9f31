//! `spec/roles.md` is the source of truth; `spec/permissions.toml` is its machine-readable copy,
//! which the core decides from. This test fails when the two disagree in content:
//!
//! 1. the rows of the two Markdown tables (§1 settings, §2 activities) and the toml rows are the
//!    same, in the same order, and every verbatim cell text kept in the toml (`cells`, `holds`,
//!    `labkey`) equals the Markdown cell;
//! 2. the structured reading in the toml is what the cell texts say, through a fixed vocabulary
//!    written here. A cell text the vocabulary does not know fails the test: read the new text,
//!    then add its reading to the vocabulary below.
//! 3. the project copy of roles.md is the shared one, when the shared one is present;
//! 4. the vocabulary the toml's header comment documents is the one the core reads, and every
//!    word the file uses is documented there.

use std::collections::{BTreeMap, BTreeSet};

use cryowarden_core::table::{
    AccessCell, Grant, GrantCell, PERMISSIONS_TOML, PermissionFile, RowBound, parse,
};
use cryowarden_core::{Access, Action, Actor, Resource, Setting, SiteRole, UserId, authorize};

const ROLES_MD: &str = include_str!("../../../spec/roles.md");

// ------------------------------------------------------------------------------------------------
// Markdown tables
// ------------------------------------------------------------------------------------------------

/// A pipe table: its header cells and the cells of each body row, trimmed, verbatim otherwise.
struct MdTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The cells of one table line: `| a | b |` -> ["a", "b"]. `\|` is a literal pipe in a cell.
fn md_cells(line: &str) -> Vec<String> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').unwrap_or(inner);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn is_table_line(line: &str) -> bool {
    line.trim_start().starts_with('|')
}

/// The one table of `doc` whose first header cell is `first_header_cell`.
fn md_table(doc: &str, first_header_cell: &str) -> MdTable {
    let lines: Vec<&str> = doc.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            is_table_line(lines[i])
                && (i == 0 || !is_table_line(lines[i - 1]))
                && md_cells(lines[i]).first().map(String::as_str) == Some(first_header_cell)
        })
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "spec/roles.md should hold exactly one table headed `| {first_header_cell} |`"
    );
    let start = starts[0];
    let header = md_cells(lines[start]);
    let separator = md_cells(lines.get(start + 1).copied().unwrap_or(""));
    assert_eq!(
        separator.len(),
        header.len(),
        "table `{first_header_cell}`: separator line does not match the header"
    );
    for s in &separator {
        let dashes = s.trim_matches(':');
        assert!(
            !dashes.is_empty() && dashes.chars().all(|c| c == '-'),
            "table `{first_header_cell}`: bad separator cell {s:?}"
        );
    }
    let mut rows = Vec::new();
    for (n, line) in lines[start + 2..]
        .iter()
        .take_while(|l| is_table_line(l))
        .enumerate()
    {
        let cells = md_cells(line);
        assert_eq!(
            cells.len(),
            header.len(),
            "table `{first_header_cell}`, body row {}: {} cells for {} columns: {line}",
            n + 1,
            cells.len(),
            header.len()
        );
        rows.push(cells);
    }
    assert!(!rows.is_empty(), "table `{first_header_cell}` has no rows");
    MdTable { header, rows }
}

/// Index of each header, checking that the header is exactly `expected` (in any order).
fn columns(table: &MdTable, expected: &[&str]) -> BTreeMap<String, usize> {
    let got: BTreeSet<&str> = table.header.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(
        got, want,
        "the Markdown table header changed: update tests/spec_agreement.rs and spec/permissions.toml"
    );
    assert_eq!(
        table.header.len(),
        expected.len(),
        "duplicate header cells in {:?}",
        table.header
    );
    table
        .header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.clone(), i))
        .collect()
}

fn toml_file() -> PermissionFile {
    parse(PERMISSIONS_TOML).expect("spec/permissions.toml parses")
}

/// `roles.md` with every run of whitespace made one space, to find sentences across line breaks.
fn roles_md_flat() -> String {
    ROLES_MD.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ------------------------------------------------------------------------------------------------
// §1 — settings
// ------------------------------------------------------------------------------------------------

/// §1 header -> the toml field holding its cell text verbatim.
const SETTING_COLUMNS: &[(&str, &str)] = &[
    ("setting (cryowarden)", "key"),
    ("holds", "holds"),
    ("LabKey analog", "labkey"),
    ("Site Admin", "cells.site_admin"),
    ("Application Admin", "cells.application_admin"),
    ("Troubleshooter", "cells.troubleshooter"),
];

/// The vocabulary of §1 cells: text -> structured reading.
fn setting_reading(text: &str) -> Option<AccessCell> {
    Some(match text {
        "all" => AccessCell::Plain(Access::All),
        "read-only" => AccessCell::Plain(Access::ReadOnly),
        "none" => AccessCell::Plain(Access::None),
        // site-errors: "VIEW ALL SITE ERRORS, RESET SITE ERRORS" both granted = all; viewing only = read-only.
        "view all, reset all" => AccessCell::Plain(Access::All),
        "view only" => AccessCell::Plain(Access::ReadOnly),
        "read all; change all except system email address and login message" => {
            AccessCell::Partial {
                access: Access::All,
                read_only_fields: vec!["system_email_address".into(), "login_message".into()],
            }
        }
        _ => return None,
    })
}

#[test]
fn settings_rows_match_the_markdown_verbatim() {
    let md = md_table(ROLES_MD, "setting (cryowarden)");
    let col = columns(
        &md,
        &SETTING_COLUMNS.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
    );
    let file = toml_file();

    let md_keys: Vec<&str> = md
        .rows
        .iter()
        .map(|r| r[col["setting (cryowarden)"]].as_str())
        .collect();
    let toml_keys: Vec<&str> = file.setting.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        md_keys, toml_keys,
        "§1 rows differ (set or order) between spec/roles.md and spec/permissions.toml"
    );

    let mut problems = Vec::new();
    for (md_row, row) in md.rows.iter().zip(&file.setting) {
        let cell = |h: &str| md_row[col[h]].as_str();
        let mut check = |what: &str, toml_text: Option<&str>, md_text: &str| {
            if toml_text != Some(md_text) {
                problems.push(format!(
                    "setting {}: {what} is {toml_text:?} in the toml, {md_text:?} in roles.md",
                    row.key
                ));
            }
        };
        check("holds", Some(&row.holds), cell("holds"));
        check("labkey", Some(&row.labkey), cell("LabKey analog"));
        for (header, field) in SETTING_COLUMNS
            .iter()
            .filter(|(_, f)| f.starts_with("cells."))
        {
            let key = &field["cells.".len()..];
            check(field, row.cells.get(key).map(String::as_str), cell(header));
        }
        let keys: BTreeSet<&str> = row.cells.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = ["site_admin", "application_admin", "troubleshooter"].into();
        if keys != want {
            problems.push(format!(
                "setting {}: cells has keys {keys:?}, expected {want:?}",
                row.key
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "spec/permissions.toml disagrees with spec/roles.md §1:\n{}",
        problems.join("\n")
    );
}

#[test]
fn settings_structured_reading_matches_the_cell_text() {
    let file = toml_file();
    let mut problems = Vec::new();
    for row in &file.setting {
        if Setting::parse(&row.key).is_none() {
            problems.push(format!("setting {} is not a Setting of the core", row.key));
        }
        for (column, structured) in [
            ("site_admin", &row.site_admin),
            ("application_admin", &row.application_admin),
            ("troubleshooter", &row.troubleshooter),
        ] {
            let text = row
                .cells
                .get(column)
                .map(String::as_str)
                .unwrap_or("<missing>");
            match setting_reading(text) {
                None => problems.push(format!(
                    "setting {} / {column}: cell text {text:?} is not in the §1 vocabulary of tests/spec_agreement.rs \
                     (fn setting_reading): update the vocabulary with its structured reading",
                    row.key
                )),
                Some(expected) if &expected != structured => problems.push(format!(
                    "setting {} / {column}: the text {text:?} reads as {expected:?}, the toml says {structured:?}",
                    row.key
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn ordinary_users_and_scoped_admins_have_none_on_every_setting() {
    assert!(
        roles_md_flat()
            .contains("Ordinary users, project admins and folder admins have `none` on every row."),
        "the sentence this test checks is gone from spec/roles.md §1: update this test"
    );
    let file = toml_file();
    assert_eq!(file.setting.len(), Setting::ALL.len());
    assert_eq!(Setting::ALL.len(), 32, "roles.md §1 has 32 settings");
    let user = Actor::new(UserId(7), SiteRole::None);
    let mut checked = 0;
    for setting in Setting::ALL.iter().copied() {
        // An ordinary user, a project admin (of any project), a folder admin, or both.
        for (pa, fa) in [(false, false), (true, false), (false, true), (true, true)] {
            let resource = Resource::instance().scoped(pa, fa);
            let read = authorize(&user, Action::ReadSetting(setting), &resource);
            assert!(
                !read.is_allowed(),
                "{setting}: read allowed for an ordinary user (project admin {pa}, folder admin {fa})"
            );
            for field in [None, Some("instance_name"), Some("login_message")] {
                let change = authorize(&user, Action::ChangeSetting { setting, field }, &resource);
                assert!(
                    !change.is_allowed(),
                    "{setting}: change {field:?} allowed for an ordinary user (pa {pa}, fa {fa})"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 32 * 4);
}

// ------------------------------------------------------------------------------------------------
// §2 — activities
// ------------------------------------------------------------------------------------------------

/// §2 header -> the key of the toml `cells` map holding its text ("activity" maps by row order).
const ACTIVITY_COLUMNS: &[(&str, &str)] = &[
    ("activity", ""),
    ("Site Admin", "site_admin"),
    ("Application Admin", "application_admin"),
    ("Project Admin", "project_admin"),
    ("Folder Admin", "folder_admin"),
    ("ordinary user", "user"),
    ("bounds", "bounds"),
];

/// The grant columns of a §2 row, as the toml names them.
const GRANT_COLUMNS: &[&str] = &[
    "site_admin",
    "application_admin",
    "project_admin",
    "folder_admin",
    "user",
];

/// One reading of a §2 cell text: in `column` (or any, "*"), for `action` of the row (or every
/// action of the row, "*"), the text grants `grant` with the cell bounds `bounds`.
struct Reading {
    text: &'static str,
    column: &'static str,
    action: &'static str,
    grant: Grant,
    bounds: &'static [&'static str],
}

const fn r(
    text: &'static str,
    column: &'static str,
    action: &'static str,
    grant: Grant,
    bounds: &'static [&'static str],
) -> Reading {
    Reading {
        text,
        column,
        action,
        grant,
        bounds,
    }
}

/// The vocabulary of §2 cells. The project_admin and folder_admin columns only ever apply within
/// the project / workspace the actor administers, so "only users of their project" is a plain yes
/// in that column.
const ACTIVITY_VOCABULARY: &[Reading] = &[
    r("yes", "*", "*", Grant::Yes, &[]),
    r("no", "*", "*", Grant::No, &[]),
    r(
        "yes, not a Site Admin",
        "application_admin",
        "*",
        Grant::UnlessTargetSiteAdmin,
        &[],
    ),
    r(
        "yes, not a Site Admin's",
        "application_admin",
        "*",
        Grant::UnlessTargetSiteAdmin,
        &[],
    ),
    r(
        "yes, not for Site Admins",
        "application_admin",
        "*",
        Grant::UnlessTargetSiteAdmin,
        &[],
    ),
    r(
        "yes, but not the memberships of Site Admins",
        "application_admin",
        "*",
        Grant::UnlessTargetSiteAdmin,
        &[],
    ),
    r(
        "yes, but not reset a Site Admin's password",
        "application_admin",
        "view-user",
        Grant::Yes,
        &[],
    ),
    r(
        "yes, but not reset a Site Admin's password",
        "application_admin",
        "change-password",
        Grant::UnlessTargetSiteAdmin,
        &[],
    ),
    r(
        "see, for users of their project; no password change",
        "project_admin",
        "view-user",
        Grant::Yes,
        &[],
    ),
    r(
        "see, for users of their project; no password change",
        "project_admin",
        "change-password",
        Grant::No,
        &[],
    ),
    r(
        "see, for users of their workspace; no password change",
        "folder_admin",
        "view-user",
        Grant::Yes,
        &[],
    ),
    r(
        "see, for users of their workspace; no password change",
        "folder_admin",
        "change-password",
        Grant::No,
        &[],
    ),
    r("only themselves", "user", "*", Grant::SelfOnly, &[]),
    r(
        "yes, but never gain Site Admin rights by it",
        "application_admin",
        "*",
        Grant::Yes,
        &["no-site-admin-rights"],
    ),
    r(
        "only users of their project",
        "project_admin",
        "*",
        Grant::Yes,
        &[],
    ),
    r(
        "only users of their workspace",
        "folder_admin",
        "*",
        Grant::Yes,
        &[],
    ),
    r(
        "yes, but no custom file root",
        "application_admin",
        "create-project",
        Grant::Yes,
        &["no-custom-file-root"],
    ),
    r(
        "yes, but no custom file root",
        "application_admin",
        "delete-project",
        Grant::Yes,
        &[],
    ),
    r(
        "yes, not the file root",
        "*",
        "update-project-settings",
        Grant::Yes,
        &["no-custom-file-root"],
    ),
    r(
        "yes, not the file root",
        "*",
        "set-custom-file-root",
        Grant::No,
        &[],
    ),
];

/// What a bounds-column text (or a sentence outside the tables) does to the reading of its row.
enum Effect {
    /// A row bound, whatever the column.
    Row(RowBound),
    /// Sets the grant of one column of one action (creating the cell if the column is absent).
    SetGrant(&'static str, &'static str, Grant),
    /// Adds a cell bound to one column of one action.
    AddBound(&'static str, &'static str, &'static str),
}

/// The vocabulary of the §2 bounds column.
const BOUNDS_VOCABULARY: &[(&str, &[Effect])] = &[
    ("", &[]),
    (
        "delete is immediate and permanent; a user can never delete or demote themselves",
        &[Effect::Row(RowBound::NeverSelf)],
    ),
    (
        "users may change their own details",
        &[Effect::SetGrant("edit-user", "user", Grant::SelfOnly)],
    ),
    (
        "removing oneself asks for confirmation",
        &[Effect::Row(RowBound::ConfirmSelf)],
    ),
    (
        "site-wide roles are off while a project/folder admin impersonates",
        &[
            Effect::AddBound("impersonate", "project_admin", "site-roles-off"),
            Effect::AddBound("impersonate", "folder_admin", "site-roles-off"),
        ],
    ),
    (
        // Restates the cells ("yes, not the file root"): nobody but a Site Admin sets one.
        "only a Site Admin sets a file root to a custom path",
        &[
            Effect::SetGrant("set-custom-file-root", "application_admin", Grant::No),
            Effect::SetGrant("set-custom-file-root", "project_admin", Grant::No),
            Effect::SetGrant("set-custom-file-root", "folder_admin", Grant::No),
            Effect::SetGrant("set-custom-file-root", "user", Grant::No),
        ],
    ),
];

/// Readings from sentences of roles.md outside the §2 table: (sentence, toml row key, effect).
/// Each sentence must still be in roles.md.
const OUTSIDE_THE_TABLE: &[(&str, &str, Effect)] = &[
    (
        "Troubleshooters have the ordinary user's column here, plus read-only sight of user details.",
        "see-user-details",
        Effect::SetGrant("view-user", "troubleshooter", Grant::Yes),
    ),
    (
        "An Impersonating Troubleshooter has every permission of a Troubleshooter",
        "see-user-details",
        Effect::SetGrant("view-user", "impersonating_troubleshooter", Grant::Yes),
    ),
    (
        "plus the ability to impersonate a Site Admin and act as one until the impersonation ends",
        "impersonate",
        Effect::SetGrant(
            "impersonate",
            "impersonating_troubleshooter",
            Grant::OnlyTargetSiteAdmin,
        ),
    ),
    (
        "Every action taken while impersonating is audited with both identities.",
        "impersonate",
        Effect::AddBound("impersonate", "impersonating_troubleshooter", "break-glass"),
    ),
    (
        // §3, and "a user can never delete or demote themselves": no one edits their own admin role.
        "The role of the person currently editing cannot be changed by themselves",
        "update-site-admins",
        Effect::Row(RowBound::NeverSelf),
    ),
    (
        // Impersonating is acting as someone else: there is no impersonating oneself.
        "impersonate users, roles, groups",
        "impersonate",
        Effect::Row(RowBound::NeverSelf),
    ),
];

type Cell = (Grant, BTreeSet<String>);

fn normalise(cell: &GrantCell) -> Cell {
    match cell {
        GrantCell::Plain(g) => (*g, BTreeSet::new()),
        GrantCell::WithBounds { grant, bounds } => (*grant, bounds.iter().cloned().collect()),
    }
}

fn apply(
    effect: &Effect,
    actions: &mut BTreeMap<String, BTreeMap<String, Cell>>,
    row_bounds: &mut Vec<RowBound>,
    problems: &mut Vec<String>,
    row: &str,
) {
    match effect {
        Effect::Row(b) => {
            if !row_bounds.contains(b) {
                row_bounds.push(*b);
            }
        }
        Effect::SetGrant(action, column, grant) => match actions.get_mut(*action) {
            Some(cells) => {
                cells
                    .entry(column.to_string())
                    .or_insert_with(|| (*grant, BTreeSet::new()))
                    .0 = *grant;
            }
            None => problems.push(format!(
                "row {row}: the vocabulary names action {action}, which the row does not have"
            )),
        },
        Effect::AddBound(action, column, bound) => {
            match actions.get_mut(*action).and_then(|c| c.get_mut(*column)) {
                Some(cell) => {
                    cell.1.insert(bound.to_string());
                }
                None => problems.push(format!(
                    "row {row}: the vocabulary bounds {action}/{column}, which has no cell"
                )),
            }
        }
    }
}

#[test]
fn activity_rows_match_the_markdown_verbatim() {
    let md = md_table(ROLES_MD, "activity");
    let col = columns(
        &md,
        &ACTIVITY_COLUMNS.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
    );
    let file = toml_file();
    assert_eq!(
        md.rows.len(),
        file.activity.len(),
        "§2 has {} rows in roles.md and {} in the toml",
        md.rows.len(),
        file.activity.len()
    );
    let mut problems = Vec::new();
    for (md_row, row) in md.rows.iter().zip(&file.activity) {
        let name = &md_row[col["activity"]];
        for (header, key) in ACTIVITY_COLUMNS.iter().skip(1) {
            let md_text = md_row[col[*header]].as_str();
            let toml_text = row.cells.get(*key).map(String::as_str);
            if toml_text != Some(md_text) {
                problems.push(format!(
                    "activity {:?} (toml {}): cells.{key} is {toml_text:?} in the toml, {md_text:?} in roles.md",
                    name, row.key
                ));
            }
        }
        let keys: BTreeSet<&str> = row.cells.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = ACTIVITY_COLUMNS.iter().skip(1).map(|(_, k)| *k).collect();
        if keys != want {
            problems.push(format!(
                "activity {}: cells has keys {keys:?}, expected {want:?}",
                row.key
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "spec/permissions.toml disagrees with spec/roles.md §2:\n{}",
        problems.join("\n")
    );
}

#[test]
fn activity_structured_reading_matches_the_cell_text() {
    let file = toml_file();
    let flat = roles_md_flat();
    let mut problems = Vec::new();

    for (sentence, row_key, _) in OUTSIDE_THE_TABLE {
        if !flat.contains(sentence) {
            problems.push(format!(
                "the sentence {sentence:?} is gone from spec/roles.md: revise OUTSIDE_THE_TABLE"
            ));
        }
        if !file.activity.iter().any(|a| a.key == *row_key) {
            problems.push(format!(
                "OUTSIDE_THE_TABLE names row {row_key}, which the toml does not have"
            ));
        }
    }

    for row in &file.activity {
        // The reading the vocabulary gives: action -> column -> (grant, cell bounds).
        let mut expected: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
        for action in row.actions.keys() {
            let mut cells = BTreeMap::new();
            for column in GRANT_COLUMNS {
                let text = row
                    .cells
                    .get(*column)
                    .map(String::as_str)
                    .unwrap_or("<missing>");
                let readings: Vec<&Reading> = ACTIVITY_VOCABULARY
                    .iter()
                    .filter(|r| {
                        r.text == text
                            && (r.column == "*" || r.column == *column)
                            && (r.action == "*" || r.action == action)
                    })
                    .collect();
                match readings.as_slice() {
                    [one] => {
                        cells.insert(column.to_string(), (one.grant, one.bounds.iter().map(std::string::ToString::to_string).collect()));
                    }
                    [] => problems.push(format!(
                        "activity {} / {column} / {action}: cell text {text:?} is not in the §2 vocabulary of \
                         tests/spec_agreement.rs (ACTIVITY_VOCABULARY) for this column and action: update the vocabulary",
                        row.key
                    )),
                    _ => problems.push(format!("ACTIVITY_VOCABULARY reads {text:?} ({column}, {action}) more than one way")),
                }
            }
            expected.insert(action.clone(), cells);
        }
        let mut row_bounds = Vec::new();
        let bounds_text = row
            .cells
            .get("bounds")
            .map(String::as_str)
            .unwrap_or("<missing>");
        match BOUNDS_VOCABULARY.iter().find(|(t, _)| *t == bounds_text) {
            Some((_, effects)) => {
                for e in *effects {
                    apply(e, &mut expected, &mut row_bounds, &mut problems, &row.key);
                }
            }
            None => problems.push(format!(
                "activity {}: bounds text {bounds_text:?} is not in the vocabulary of tests/spec_agreement.rs \
                 (BOUNDS_VOCABULARY): update the vocabulary",
                row.key
            )),
        }
        for (_, _, e) in OUTSIDE_THE_TABLE.iter().filter(|(_, k, _)| *k == row.key) {
            apply(e, &mut expected, &mut row_bounds, &mut problems, &row.key);
        }

        // Compare with the toml.
        let got: BTreeMap<String, BTreeMap<String, Cell>> = row
            .actions
            .iter()
            .map(|(a, cells)| {
                (
                    a.clone(),
                    cells
                        .iter()
                        .map(|(c, g)| (c.clone(), normalise(g)))
                        .collect(),
                )
            })
            .collect();
        for (action, want) in &expected {
            let have = &got[action];
            for column in want.keys().chain(have.keys()).collect::<BTreeSet<_>>() {
                let (w, h) = (want.get(column), have.get(column));
                if w != h {
                    problems.push(format!(
                        "activity {} / {action} / {column}: the text reads as {w:?}, the toml says {h:?}",
                        row.key
                    ));
                }
            }
        }
        let same_bounds = row_bounds.len() == row.bounds.len()
            && row_bounds.iter().all(|b| row.bounds.contains(b));
        if !same_bounds {
            problems.push(format!(
                "activity {}: row bounds read as {row_bounds:?}, the toml says {:?}",
                row.key, row.bounds
            ));
        }
    }

    // Every action of the core is in exactly one row.
    let mut names: Vec<&str> = file
        .activity
        .iter()
        .flat_map(|a| a.actions.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    let mut core: Vec<&str> = cryowarden_core::Activity::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    core.sort_unstable();
    if names != core {
        problems.push(format!(
            "the toml's actions {names:?} are not the core's activities {core:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------------
// The shared copy
// ------------------------------------------------------------------------------------------------

#[test]
fn project_roles_md_is_the_shared_one() {
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/roles.md");
    if shared.exists() {
        let shared_text =
            std::fs::read_to_string(&shared).expect("../shared/spec/roles.md is readable");
        assert!(
            shared_text == ROLES_MD,
            "spec/roles.md differs from {}: the project copy must be identical to the shared source of truth",
            shared.display()
        );
    }
}

// ------------------------------------------------------------------------------------------------
// The vocabulary the toml's header documents is the one the core reads
// ------------------------------------------------------------------------------------------------

/// The words the header of permissions.toml documents, by the phrase that opens their list.
const HEADER_SECTIONS: &[&str] = &[
    "§1 access values:",
    "§2 grants, per column:",
    "Cell bounds",
    "Row bounds",
];

#[test]
fn the_toml_header_documents_exactly_the_words_the_core_reads() {
    use cryowarden_core::Bound;
    let header: String = PERMISSIONS_TOML
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join(" ");
    let quoted = |text: &str| -> Vec<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    // Each section runs to the next one.
    let starts: Vec<(usize, &str)> = HEADER_SECTIONS
        .iter()
        .filter_map(|s| header.find(s).map(|i| (i, *s)))
        .collect();
    let mut documented: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (start, name) in &starts {
        let end = starts
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| i > start)
            .min()
            .unwrap_or(header.len());
        documented.insert(name, quoted(&header[*start..end]));
    }
    let mut problems = Vec::new();
    for section in HEADER_SECTIONS {
        if !documented.contains_key(section) {
            problems.push(format!("the header has no list opening with {section:?}"));
        }
    }
    #[derive(serde::Deserialize)]
    struct OneGrant {
        #[expect(dead_code, reason = "parsed only to check that the word is understood")]
        g: GrantCell,
    }
    #[derive(serde::Deserialize)]
    struct OneRowBound {
        #[expect(dead_code, reason = "parsed only to check that the word is understood")]
        b: RowBound,
    }
    for (section, words) in &documented {
        for w in words {
            let understood = match *section {
                "§1 access values:" => Access::parse(w).is_some(),
                "§2 grants, per column:" => {
                    toml::from_str::<OneGrant>(&format!("g = {w:?}")).is_ok()
                }
                "Cell bounds" => Bound::parse(w).is_some(),
                "Row bounds" => toml::from_str::<OneRowBound>(&format!("b = {w:?}")).is_ok(),
                _ => unreachable!(),
            };
            if !understood {
                problems
                    .push(format!("the header documents {w:?} in {section:?}, which the core does not accept there"));
            }
        }
    }
    // And every word the file uses is documented.
    let file = toml_file();
    let empty = Vec::new();
    let doc = |s: &str| documented.get(s).unwrap_or(&empty);
    for row in &file.activity {
        for b in &row.bounds {
            let name = match b {
                RowBound::NeverSelf => "never-self",
                RowBound::ConfirmSelf => "confirm-self",
            };
            if !doc("Row bounds").iter().any(|w| w == name) {
                problems.push(format!(
                    "row bound {name} (activity {}) is not documented in the header",
                    row.key
                ));
            }
        }
        for (action, cells) in &row.actions {
            for cell in cells.values() {
                if let GrantCell::WithBounds { bounds, .. } = cell {
                    for b in bounds {
                        if !doc("Cell bounds").contains(b) {
                            problems.push(format!(
                                "cell bound {b} ({action}) is not documented in the header"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the header comment of spec/permissions.toml:\n{}",
        problems.join("\n")
    );
}
