//! `cryowarden lab ...`: labs (site groups) over the REST API. A lab is named by id or name,
//! a user by id or username.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::Remote;
use super::remote::{Client, emit, s};

#[derive(Subcommand)]
pub enum LabCommand {
    /// Create a lab.
    Create {
        #[command(flatten)]
        remote: Remote,
        name: String,
        /// Display name (default: the name).
        #[arg(long)]
        title: Option<String>,
        /// all_members, managers or facility_staff (default all_members).
        #[arg(long)]
        import_policy: Option<String>,
    },
    /// List the labs you may see.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a lab and its members.
    Show {
        #[command(flatten)]
        remote: Remote,
        lab: String,
    },
    /// Add a member to a lab, or change their lab role.
    AddMember {
        #[command(flatten)]
        remote: Remote,
        lab: String,
        user: String,
        /// member or manager.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Remove a member from a lab.
    RemoveMember {
        #[command(flatten)]
        remote: Remote,
        lab: String,
        user: String,
    },
    /// Replace a lab's storage roots (Site Admins only).
    SetRoots {
        #[command(flatten)]
        remote: Remote,
        lab: String,
        /// A data root (repeat for several; none clears them).
        #[arg(long = "data-root")]
        data_roots: Vec<String>,
        #[arg(long)]
        project_root: Option<String>,
    },
    /// Set the Unix account a lab's jobs run as (Site Admins only).
    SetUnixAccount {
        #[command(flatten)]
        remote: Remote,
        lab: String,
        user: String,
        /// Default: the user's primary group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Set who may import data: all_members, managers or facility_staff.
    SetImportPolicy {
        #[command(flatten)]
        remote: Remote,
        lab: String,
        policy: String,
    },
}

impl Client {
    /// A lab id from an id or a name.
    pub(super) async fn lab_id(&self, lab: &str) -> anyhow::Result<i64> {
        if let Ok(id) = lab.parse() {
            return Ok(id);
        }
        let labs = self.send(Method::GET, "/api/v1/labs", None).await?;
        labs.as_array()
            .and_then(|ls| {
                ls.iter().find(|l| {
                    l["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(lab))
                })
            })
            .and_then(|l| l["id"].as_i64())
            .with_context(|| format!("no lab named {lab} that you can see"))
    }
}

fn print_lab(l: &Value) {
    println!(
        "{:>5}  {:<24} {:<40} {:>3} members  import: {}",
        l["id"],
        s(&l["name"]),
        s(&l["title"]),
        l["member_count"],
        s(&l["import_policy"])
    );
}

fn print_lab_details(l: &Value) {
    print_lab(l);
    for r in l["data_roots"].as_array().into_iter().flatten() {
        println!("       data root     {}", s(r));
    }
    if !l["project_root"].is_null() {
        println!("       project root  {}", s(&l["project_root"]));
    }
    if !l["unix_user"].is_null() {
        println!(
            "       runs as       {} ({}) : {} ({})",
            s(&l["unix_user"]),
            l["uid"],
            s(&l["unix_group"]),
            l["gid"]
        );
    }
}

pub async fn lab(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Create {
            remote,
            name,
            title,
            import_policy,
        } => {
            let c = Client::new(&remote)?;
            let mut body = json!({ "name": name });
            if let Some(t) = title {
                body["title"] = json!(t);
            }
            if let Some(p) = import_policy {
                body["import_policy"] = json!(p);
            }
            let v = c.send(Method::POST, "/api/v1/labs", Some(body)).await?;
            emit(c.json, &v, |v| {
                println!("created lab {} (id {})", s(&v["name"]), v["id"]);
            });
        }
        LabCommand::List { remote } => {
            let c = Client::new(&remote)?;
            let v = c.send(Method::GET, "/api/v1/labs", None).await?;
            emit(c.json, &v, |v| {
                v.as_array().into_iter().flatten().for_each(print_lab);
            });
        }
        LabCommand::Show { remote, lab } => {
            let c = Client::new(&remote)?;
            let id = c.lab_id(&lab).await?;
            let mut v = c
                .send(Method::GET, &format!("/api/v1/labs/{id}"), None)
                .await?;
            v["members"] = c
                .send(Method::GET, &format!("/api/v1/labs/{id}/members"), None)
                .await?;
            emit(c.json, &v, |v| {
                print_lab_details(v);
                for m in v["members"].as_array().into_iter().flatten() {
                    println!(
                        "       {:<8} {:<20} {}",
                        s(&m["lab_role"]),
                        s(&m["username"]),
                        s(&m["email"])
                    );
                }
            });
        }
        LabCommand::AddMember {
            remote,
            lab,
            user,
            role,
        } => {
            let c = Client::new(&remote)?;
            let (id, user_id) = (c.lab_id(&lab).await?, c.user_id(&user).await?);
            let body = json!({ "user_id": user_id, "role": role });
            let v = c
                .send(
                    Method::POST,
                    &format!("/api/v1/labs/{id}/members"),
                    Some(body),
                )
                .await?;
            emit(c.json, &v, |v| {
                println!("{user} is a {role} of {}", s(&v["name"]));
            });
        }
        LabCommand::RemoveMember { remote, lab, user } => {
            let c = Client::new(&remote)?;
            let (id, user_id) = (c.lab_id(&lab).await?, c.user_id(&user).await?);
            c.send(
                Method::DELETE,
                &format!("/api/v1/labs/{id}/members/{user_id}"),
                None,
            )
            .await?;
            emit(c.json, &json!({ "lab": id, "removed": user_id }), |_| {
                println!("removed {user} from {lab}");
            });
        }
        LabCommand::SetRoots {
            remote,
            lab,
            data_roots,
            project_root,
        } => {
            let c = Client::new(&remote)?;
            let id = c.lab_id(&lab).await?;
            let body = json!({ "data_roots": data_roots, "project_root": project_root });
            let v = c
                .send(Method::PUT, &format!("/api/v1/labs/{id}/roots"), Some(body))
                .await?;
            emit(c.json, &v, print_lab_details);
        }
        LabCommand::SetUnixAccount {
            remote,
            lab,
            user,
            group,
        } => {
            let c = Client::new(&remote)?;
            let id = c.lab_id(&lab).await?;
            let body = json!({ "user": user, "group": group });
            let v = c
                .send(
                    Method::PUT,
                    &format!("/api/v1/labs/{id}/unix-account"),
                    Some(body),
                )
                .await?;
            emit(c.json, &v, print_lab_details);
        }
        LabCommand::SetImportPolicy {
            remote,
            lab,
            policy,
        } => {
            let c = Client::new(&remote)?;
            let id = c.lab_id(&lab).await?;
            let v = c
                .send(
                    Method::PATCH,
                    &format!("/api/v1/labs/{id}"),
                    Some(json!({ "import_policy": policy })),
                )
                .await?;
            emit(c.json, &v, |v| {
                println!(
                    "{}: import policy {}",
                    s(&v["name"]),
                    s(&v["import_policy"])
                );
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
