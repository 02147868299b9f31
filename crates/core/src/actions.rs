use crate::data::DataAction;
use crate::names::named_enum;
use crate::roles::SiteRole;
use crate::settings::Setting;

named_enum! {
    /// A user or project activity of `spec/roles.md` §2.
    pub enum Activity {
        CreateUser = "create-user",
        DeleteUser = "delete-user",
        SetUserActive = "set-user-active",
        ViewUser = "view-user",
        ChangePassword = "change-password",
        EditUser = "edit-user",
        UpdateSiteAdmins = "update-site-admins",
        UpdateApplicationAdmins = "update-application-admins",
        UpdateSiteGroups = "update-site-groups",
        UpdateProjectGroups = "update-project-groups",
        UpdateSitePermissions = "update-site-permissions",
        Impersonate = "impersonate",
        CreateProject = "create-project",
        DeleteProject = "delete-project",
        CreateWorkspace = "create-workspace",
        DeleteWorkspace = "delete-workspace",
        UpdateProjectSettings = "update-project-settings",
        SetCustomFileRoot = "set-custom-file-root",
    }
}

/// Everything [`crate::authorize`] can be asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A row of §2.
    Activity(Activity),
    /// See a setting of the admin console (§1): allowed for `all` and `read-only`.
    ReadSetting(Setting),
    /// Change a setting, or one field of it where a row is partial (§1).
    ChangeSetting {
        setting: Setting,
        field: Option<&'static str>,
    },
    /// Change a user's site role. Needs every §2 row the change touches (the set of Site Admins,
    /// the set of Application Admins, site permissions for the troubleshooter roles), and never
    /// applies to oneself (§3), except leaving the Application Admin role with confirmation.
    ChangeSiteRole { from: SiteRole, to: SiteRole },
    /// Reach into a lab's data or a project's contents (`crate::data`).
    Data(DataAction),
}

impl Action {
    /// A stable name for the audit log and error messages.
    pub fn name(&self) -> String {
        match self {
            Action::Activity(a) => a.as_str().to_owned(),
            Action::ReadSetting(s) => format!("read-setting:{s}"),
            Action::ChangeSetting {
                setting,
                field: None,
            } => format!("change-setting:{setting}"),
            Action::ChangeSetting {
                setting,
                field: Some(f),
            } => {
                format!("change-setting:{setting}.{f}")
            }
            Action::ChangeSiteRole { from, to } => format!("change-site-role:{from}->{to}"),
            Action::Data(d) => d.as_str().to_owned(),
        }
    }
}

impl Action {
    /// The action a stable name (as [`Action::name`] writes it) stands for; a field of a
    /// partial setting must be one the permission table names.
    pub fn parse(name: &str) -> Option<Action> {
        if let Some(a) = Activity::parse(name) {
            return Some(Action::Activity(a));
        }
        if let Some(d) = DataAction::parse(name) {
            return Some(Action::Data(d));
        }
        if let Some(s) = name.strip_prefix("read-setting:") {
            return Setting::parse(s).map(Action::ReadSetting);
        }
        if let Some(rest) = name.strip_prefix("change-setting:") {
            let (setting, field) = match rest.split_once('.') {
                Some((s, f)) => (s, Some(f)),
                None => (rest, None),
            };
            let setting = Setting::parse(setting)?;
            let field = match field {
                None => None,
                Some(f) => {
                    let known = [
                        crate::roles::Column::SiteAdmin,
                        crate::roles::Column::ApplicationAdmin,
                        crate::roles::Column::Troubleshooter,
                    ]
                    .into_iter()
                    .flat_map(|c| crate::table::setting_access(setting, c).1.iter().copied())
                    .find(|k| *k == f)?;
                    Some(known)
                }
            };
            return Some(Action::ChangeSetting { setting, field });
        }
        if let Some(rest) = name.strip_prefix("change-site-role:") {
            let (from, to) = rest.split_once("->")?;
            return Some(Action::ChangeSiteRole {
                from: SiteRole::parse(from)?,
                to: SiteRole::parse(to)?,
            });
        }
        None
    }
}

impl From<DataAction> for Action {
    fn from(d: DataAction) -> Self {
        Action::Data(d)
    }
}

impl From<Activity> for Action {
    fn from(a: Activity) -> Self {
        Action::Activity(a)
    }
}
