//! Who may touch a lab's data and a project's contents (DESIGN.md invariant 2, issue 4).
//!
//! `spec/roles.md` §2 governs the administrative acts on projects (creating one anywhere,
//! deleting, settings, file roots, members). What it does not tabulate — the everyday reach of a
//! lab's own people into their lab's data — is decided here, from relational facts the caller
//! looks up (the actor's lab role, the project role, the lab's import policy):
//!
//! | action | Site / Application Admin | Troubleshooters | lab manager | lab member | anyone else |
//! |---|---|---|---|---|---|
//! | `import-data` (browse data roots, import) | yes | refused | unless policy is `facility_staff` | only with policy `all_members` | not found |
//! | `create-lab-project` (in one's own lab, under its project root) | yes | refused | yes | yes | not found |
//! | `view-project` | yes | yes | if lab members read, or a project member | same | project members only; else not found |
//! | `edit-project` (jobs, files) | yes | refused | project admin or editor | same | project admin or editor; else not found |
//! | `manage-project-data` (archive, delete data) | yes | refused | project admin, or with the live-data flag | same | project admin; else not found |
//!
//! Someone with no standing in the lab or project is refused with [`crate::Denied::conceal`]
//! set: the server answers "not found", so that the existence of another lab's project or data
//! never shows through ids, counts or messages.

use crate::names::named_enum;

named_enum! {
    /// A member's role in a lab (a site group).
    pub enum LabRole {
        Manager = "manager",
        Member = "member",
    }
}

named_enum! {
    /// Who may import data from a lab's data roots into its projects.
    #[derive(Default)]
    pub enum ImportPolicy {
        #[default]
        AllMembers = "all_members",
        Managers = "managers",
        FacilityStaff = "facility_staff",
    }
}

named_enum! {
    /// A member's role in a project.
    pub enum ProjectRole {
        ProjectAdmin = "project_admin",
        Editor = "editor",
        Reader = "reader",
    }
}

named_enum! {
    /// An everyday action on a lab's data or a project's contents.
    pub enum DataAction {
        ImportData = "import-data",
        CreateLabProject = "create-lab-project",
        ViewProject = "view-project",
        EditProject = "edit-project",
        ManageProjectData = "manage-project-data",
    }
}

/// The facts a data decision depends on, looked up by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataScope {
    /// The actor's role in the lab that owns the data or the project.
    pub lab_role: Option<LabRole>,
    /// That lab's import policy.
    pub import_policy: ImportPolicy,
    /// The actor's role in the project, for project actions.
    pub project_role: Option<ProjectRole>,
    /// The project lets every member of its lab read it (the default).
    pub lab_members_read: bool,
    /// The actor holds the live-data-management permission (§3).
    pub live_data_management: bool,
}

impl DataScope {
    /// The standing two people share: the weaker role of each kind, a flag only when both hold
    /// it. Used while a project or folder admin impersonates, so that the impersonated user's
    /// standing is capped by the impersonator's own.
    pub fn intersect(self, other: DataScope) -> DataScope {
        // The role enums order the strongest first, so the weaker of two is the greater.
        fn weaker<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            Some(a?.max(b?))
        }
        DataScope {
            lab_role: weaker(self.lab_role, other.lab_role),
            import_policy: self.import_policy,
            project_role: weaker(self.project_role, other.project_role),
            lab_members_read: self.lab_members_read && other.lab_members_read,
            live_data_management: self.live_data_management && other.live_data_management,
        }
    }

    pub const fn lab(lab_role: Option<LabRole>, import_policy: ImportPolicy) -> Self {
        DataScope {
            lab_role,
            import_policy,
            project_role: None,
            lab_members_read: false,
            live_data_management: false,
        }
    }
}

/// How a data action is decided for an actor: `Ok(())`, or the rule that refused, a reason, and
/// whether the refusal must conceal the resource.
pub(crate) fn decide(
    staff: bool,
    oversight: bool,
    action: DataAction,
    s: &DataScope,
) -> Result<(), (&'static str, String, bool)> {
    if staff {
        return Ok(());
    }
    let project_member = s.project_role.is_some();
    let sees_project = project_member || (s.lab_role.is_some() && s.lab_members_read);
    let refuse = |rule: &'static str, reason: String, conceal: bool| Err((rule, reason, conceal));
    match action {
        DataAction::ViewProject if sees_project || oversight => Ok(()),
        DataAction::ViewProject => refuse(
            "project-members",
            "not a member of this project".into(),
            true,
        ),
        DataAction::ImportData | DataAction::CreateLabProject if s.lab_role.is_none() => {
            refuse("lab-members", "not a member of this lab".into(), !oversight)
        }
        DataAction::CreateLabProject => Ok(()),
        DataAction::ImportData => match (s.import_policy, s.lab_role) {
            (ImportPolicy::AllMembers, _) | (ImportPolicy::Managers, Some(LabRole::Manager)) => {
                Ok(())
            }
            (ImportPolicy::Managers, _) => refuse(
                "import-policy",
                "this lab's import policy lets only its managers import data".into(),
                false,
            ),
            (ImportPolicy::FacilityStaff, _) => refuse(
                "import-policy",
                "this lab's import policy lets only facility staff (admins) import data".into(),
                false,
            ),
        },
        _ if !sees_project => refuse(
            "project-members",
            "not a member of this project".into(),
            !oversight,
        ),
        DataAction::EditProject => match s.project_role {
            Some(ProjectRole::ProjectAdmin | ProjectRole::Editor) => Ok(()),
            _ => refuse(
                "project-editors",
                "only the project's admins and editors may change it".into(),
                false,
            ),
        },
        DataAction::ManageProjectData => {
            if s.project_role == Some(ProjectRole::ProjectAdmin)
                || (s.live_data_management && s.lab_role.is_some())
            {
                Ok(())
            } else {
                refuse(
                    "live-data-management",
                    "only project admins and users with live data management may archive or delete project data".into(),
                    false,
                )
            }
        }
    }
}
