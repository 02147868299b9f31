use crate::names::named_enum;

named_enum! {
    /// The one site-wide role a user holds (`none` for an ordinary user).
    pub enum SiteRole {
        SiteAdmin = "site_admin",
        ApplicationAdmin = "application_admin",
        ImpersonatingTroubleshooter = "impersonating_troubleshooter",
        Troubleshooter = "troubleshooter",
        None = "none",
    }
}

impl SiteRole {
    /// Site and Application Admins: the roles that see the admin panel with power to change.
    pub const fn is_admin(self) -> bool {
        matches!(self, SiteRole::SiteAdmin | SiteRole::ApplicationAdmin)
    }

    /// The column of the §1 table that applies to this role, if any.
    pub const fn console_column(self) -> Option<Column> {
        match self {
            SiteRole::SiteAdmin => Some(Column::SiteAdmin),
            SiteRole::ApplicationAdmin => Some(Column::ApplicationAdmin),
            SiteRole::ImpersonatingTroubleshooter | SiteRole::Troubleshooter => {
                Some(Column::Troubleshooter)
            }
            SiteRole::None => None,
        }
    }
}

named_enum! {
    /// A column of the permission tables: whose rights a cell describes.
    pub enum Column {
        SiteAdmin = "site_admin",
        ApplicationAdmin = "application_admin",
        Troubleshooter = "troubleshooter",
        ImpersonatingTroubleshooter = "impersonating_troubleshooter",
        ProjectAdmin = "project_admin",
        FolderAdmin = "folder_admin",
        User = "user",
    }
}
