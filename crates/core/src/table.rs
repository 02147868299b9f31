//! The permission tables, read from `spec/permissions.toml` (embedded at build time) and compiled
//! into arrays indexed by enum, so that a decision is a few loads.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::actions::Activity;
use crate::roles::Column;
use crate::settings::{Access, Setting};

/// The permission file as shipped with this build.
pub const PERMISSIONS_TOML: &str = include_str!("../../../spec/permissions.toml");

/// The raw file, as written: kept public so that tests can compare it with `spec/roles.md`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionFile {
    pub setting: Vec<SettingRow>,
    pub activity: Vec<ActivityRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingRow {
    pub key: String,
    pub holds: String,
    pub labkey: String,
    /// The Markdown cells, verbatim, per column.
    pub cells: BTreeMap<String, String>,
    pub site_admin: AccessCell,
    pub application_admin: AccessCell,
    pub troubleshooter: AccessCell,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum AccessCell {
    Plain(Access),
    Partial {
        access: Access,
        read_only_fields: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityRow {
    pub key: String,
    /// The Markdown cells, verbatim, per column, and the "bounds" column.
    pub cells: BTreeMap<String, String>,
    #[serde(default)]
    pub bounds: Vec<RowBound>,
    pub actions: BTreeMap<String, BTreeMap<String, GrantCell>>,
}

/// A bound written in the row's bounds column: applies whatever the column.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RowBound {
    NeverSelf,
    ConfirmSelf,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    Yes,
    No,
    UnlessTargetSiteAdmin,
    #[serde(rename = "self")]
    SelfOnly,
    OnlyTargetSiteAdmin,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum GrantCell {
    Plain(Grant),
    WithBounds { grant: Grant, bounds: Vec<String> },
}

impl GrantCell {
    pub fn grant(&self) -> Grant {
        match self {
            GrantCell::Plain(g) | GrantCell::WithBounds { grant: g, .. } => *g,
        }
    }
}

/// One compiled cell of §2.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CompiledGrant {
    pub grant: Grant,
    /// Bits of [`crate::Bound`].
    pub bounds: u16,
}

/// One compiled cell of §1.
#[derive(Clone, Debug)]
pub(crate) struct CompiledAccess {
    pub access: Access,
    pub read_only_fields: Vec<&'static str>,
}

pub(crate) struct Table {
    /// `[setting][column]` for the SiteAdmin, ApplicationAdmin and Troubleshooter columns.
    pub settings: Vec<[CompiledAccess; 3]>,
    /// `[activity][column]`, every column of [`Column::ALL`]; absent cells take the user column.
    pub activities: Vec<[CompiledGrant; 7]>,
    pub row_bounds: Vec<(Option<RowBound>, &'static str)>,
    /// Verbatim cell text, for explanations: `[activity][column]`.
    pub cell_text: Vec<[&'static str; 7]>,
}

/// Errors in the permission file; the build's own file is checked by tests, so at run time
/// these can only come from a file someone edited by hand.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("spec/permissions.toml does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("spec/permissions.toml: {0}")]
    Content(String),
}

fn leak(s: &str) -> &'static str {
    // The table is built once per process; its strings live as long as the process.
    Box::leak(s.to_owned().into_boxed_str())
}

pub fn parse(text: &str) -> Result<PermissionFile, TableError> {
    Ok(toml::from_str(text)?)
}

pub(crate) fn compile(file: &PermissionFile) -> Result<Table, TableError> {
    let bad = |m: String| TableError::Content(m);
    let mut settings: Vec<Option<[CompiledAccess; 3]>> = vec![None; Setting::ALL.len()];
    for row in &file.setting {
        let s =
            Setting::parse(&row.key).ok_or_else(|| bad(format!("unknown setting {}", row.key)))?;
        let cell = |c: &AccessCell| match c {
            AccessCell::Plain(a) => CompiledAccess {
                access: *a,
                read_only_fields: vec![],
            },
            AccessCell::Partial {
                access,
                read_only_fields,
            } => CompiledAccess {
                access: *access,
                read_only_fields: read_only_fields.iter().map(|f| leak(f)).collect(),
            },
        };
        if settings[s.index()].is_some() {
            return Err(bad(format!("setting {} appears twice", row.key)));
        }
        settings[s.index()] = Some([
            cell(&row.site_admin),
            cell(&row.application_admin),
            cell(&row.troubleshooter),
        ]);
    }
    let settings = settings
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.ok_or_else(|| bad(format!("setting {} has no row", Setting::ALL[i]))))
        .collect::<Result<Vec<_>, _>>()?;

    let n = Activity::ALL.len();
    let mut activities: Vec<Option<[CompiledGrant; 7]>> = vec![None; n];
    let mut row_bounds = vec![(None, ""); n];
    let mut cell_text = vec![[""; 7]; n];
    for row in &file.activity {
        if row.bounds.len() > 1 {
            return Err(bad(format!(
                "activity {} has more than one row bound",
                row.key
            )));
        }
        let row_key = leak(&row.key);
        for (name, cells) in &row.actions {
            let a = Activity::parse(name).ok_or_else(|| bad(format!("unknown action {name}")))?;
            let get = |col: Column| -> Result<Option<CompiledGrant>, TableError> {
                let Some(c) = cells.get(col.as_str()) else {
                    return Ok(None);
                };
                let mut bits = 0u16;
                if let GrantCell::WithBounds { bounds, .. } = c {
                    for b in bounds {
                        bits |= crate::authorize::Bound::parse(b)
                            .ok_or_else(|| bad(format!("unknown bound {b} in {name}")))?
                            .bit();
                    }
                }
                Ok(Some(CompiledGrant {
                    grant: c.grant(),
                    bounds: bits,
                }))
            };
            for key in cells.keys() {
                if Column::parse(key).is_none() {
                    return Err(bad(format!("unknown column {key} in {name}")));
                }
            }
            let user =
                get(Column::User)?.ok_or_else(|| bad(format!("{name} has no user column")))?;
            let mut compiled = [user; 7];
            for col in Column::ALL {
                compiled[col.index()] = match get(*col)? {
                    Some(g) => g,
                    None => match col {
                        Column::Troubleshooter | Column::ImpersonatingTroubleshooter => user,
                        Column::User => user,
                        _ => return Err(bad(format!("{name} has no {col} column"))),
                    },
                };
            }
            if activities[a.index()].is_some() {
                return Err(bad(format!("action {name} appears twice")));
            }
            activities[a.index()] = Some(compiled);
            row_bounds[a.index()] = (row.bounds.first().copied(), row_key);
            for col in Column::ALL {
                let text = match col {
                    Column::Troubleshooter | Column::ImpersonatingTroubleshooter => {
                        row.cells.get("user")
                    }
                    _ => row.cells.get(col.as_str()),
                };
                cell_text[a.index()][col.index()] = leak(text.map(String::as_str).unwrap_or(""));
            }
        }
    }
    let activities = activities
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.ok_or_else(|| bad(format!("action {} has no row", Activity::ALL[i]))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table {
        settings,
        activities,
        row_bounds,
        cell_text,
    })
}

static TABLE: OnceLock<Table> = OnceLock::new();

/// The compiled table of this build. Panics only if the embedded file is invalid, which the
/// crate's tests rule out.
pub(crate) fn table() -> &'static Table {
    TABLE.get_or_init(|| {
        let file = parse(PERMISSIONS_TOML).expect("embedded spec/permissions.toml parses");
        compile(&file).expect("embedded spec/permissions.toml is complete")
    })
}

/// The access a §1 column gives to a setting, and the fields it may only read.
pub fn setting_access(setting: Setting, column: Column) -> (Access, &'static [&'static str]) {
    let idx = match column {
        Column::SiteAdmin => 0,
        Column::ApplicationAdmin => 1,
        Column::Troubleshooter | Column::ImpersonatingTroubleshooter => 2,
        _ => return (Access::None, &[]),
    };
    let cell = &table().settings[setting.index()][idx];
    (cell.access, &cell.read_only_fields)
}
