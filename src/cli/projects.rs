//! `cryowarden project ...`: projects over the REST API. A project is named by id or by
//! `LAB/NAME`, a lab by id or name, a user by id or username.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::Remote;
use super::remote::{Client, emit, s};

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project in a lab; its directory is made as the lab's Unix account.
    Create {
        #[command(flatten)]
        remote: Remote,
        /// The lab (id or name).
        lab: String,
        name: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Only project members may read it (default: every member of the lab may).
        #[arg(long)]
        members_only: bool,
        /// A custom file root outside the lab's project root (Site Admins only).
        #[arg(long)]
        file_root: Option<String>,
    },
    /// List the projects you may see.
    List {
        #[command(flatten)]
        remote: Remote,
        /// Only this lab's projects (id or name).
        #[arg(long)]
        lab: Option<String>,
        /// Substring of the name or title.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: i64,
        #[arg(long, default_value_t = 50)]
        per_page: i64,
    },
    /// Show a project, its members and workspaces.
    Show {
        #[command(flatten)]
        remote: Remote,
        /// Id or LAB/NAME.
        project: String,
    },
    /// Add a member to a project, or change their role.
    AddMember {
        #[command(flatten)]
        remote: Remote,
        project: String,
        user: String,
        /// project_admin, editor or reader.
        #[arg(long, default_value = "reader")]
        role: String,
    },
    /// Remove a member's role in a project.
    RemoveMember {
        #[command(flatten)]
        remote: Remote,
        project: String,
        user: String,
    },
}

impl Client {
    /// A project id from an id or LAB/NAME.
    pub(super) async fn project_id(&self, project: &str) -> anyhow::Result<i64> {
        if let Ok(id) = project.parse() {
            return Ok(id);
        }
        let (lab, name) = project
            .split_once('/')
            .context("name a project by id or as LAB/NAME")?;
        let lab_id = self.lab_id(lab).await?;
        let v = self
            .send(
                Method::GET,
                &format!(
                    "/api/v1/projects?lab={lab_id}&q={}&per_page=500",
                    encode(name)
                ),
                None,
            )
            .await?;
        v["projects"]
            .as_array()
            .and_then(|ps| {
                ps.iter().find(|p| {
                    p["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            })
            .and_then(|p| p["id"].as_i64())
            .with_context(|| format!("no project {project} that you can see"))
    }
}

impl Client {
    /// A user id from an id or a username, looked up among the members of the project's lab
    /// (whom a project admin may see, unlike the whole user directory).
    async fn lab_member_id(&self, project: i64, user: &str) -> anyhow::Result<i64> {
        if let Ok(id) = user.parse() {
            return Ok(id);
        }
        let p = self
            .send(Method::GET, &format!("/api/v1/projects/{project}"), None)
            .await?;
        let members = self
            .send(
                Method::GET,
                &format!("/api/v1/labs/{}/members", p["lab_id"]),
                None,
            )
            .await?;
        members
            .as_array()
            .and_then(|ms| {
                ms.iter().find(|m| {
                    m["username"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(user))
                })
            })
            .and_then(|m| m["user_id"].as_i64())
            .with_context(|| {
                format!(
                    "{user} is not a member of the project's lab {}",
                    s(&p["lab_name"])
                )
            })
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn print_project(p: &Value) {
    println!(
        "{:>6}  {:<16} {:<24} {:<14} {:<13} {}",
        p["id"],
        s(&p["lab_name"]),
        s(&p["name"]),
        s(&p["my_role"]),
        s(&p["status"]),
        s(&p["title"])
    );
}

pub async fn project(cmd: ProjectCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ProjectCommand::Create {
            remote,
            lab,
            name,
            title,
            description,
            members_only,
            file_root,
        } => {
            let c = Client::new(&remote)?;
            let lab_id = c.lab_id(&lab).await?;
            let body = json!({
                "lab_id": lab_id, "name": name, "title": title, "description": description,
                "lab_members_read": !members_only, "file_root": file_root,
            });
            let v = c.send(Method::POST, "/api/v1/projects", Some(body)).await?;
            emit(c.json, &v, |v| {
                println!(
                    "created project {} (id {}) at {}",
                    s(&v["name"]),
                    v["id"],
                    s(&v["path"])
                );
            });
        }
        ProjectCommand::List {
            remote,
            lab,
            search,
            page,
            per_page,
        } => {
            let c = Client::new(&remote)?;
            let mut url = format!("/api/v1/projects?page={page}&per_page={per_page}");
            if let Some(lab) = lab {
                url.push_str(&format!("&lab={}", c.lab_id(&lab).await?));
            }
            if let Some(q) = search {
                url.push_str(&format!("&q={}", encode(&q)));
            }
            let v = c.send(Method::GET, &url, None).await?;
            emit(c.json, &v, |v| {
                v["projects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .for_each(print_project);
                println!("page {} of {} project(s)", v["page"], v["total"]);
            });
        }
        ProjectCommand::Show { remote, project } => {
            let c = Client::new(&remote)?;
            let id = c.project_id(&project).await?;
            let mut v = c
                .send(Method::GET, &format!("/api/v1/projects/{id}"), None)
                .await?;
            v["members"] = c
                .send(Method::GET, &format!("/api/v1/projects/{id}/members"), None)
                .await?;
            v["workspaces"] = c
                .send(
                    Method::GET,
                    &format!("/api/v1/projects/{id}/workspaces"),
                    None,
                )
                .await?;
            emit(c.json, &v, |v| {
                print_project(v);
                println!("        path  {}", s(&v["path"]));
                for m in v["members"].as_array().into_iter().flatten() {
                    println!("        {:<14} {}", s(&m["role"]), s(&m["username"]));
                }
                for w in v["workspaces"].as_array().into_iter().flatten() {
                    println!("        workspace {:<20} {}", s(&w["name"]), s(&w["title"]));
                }
            });
        }
        ProjectCommand::AddMember {
            remote,
            project,
            user,
            role,
        } => {
            let c = Client::new(&remote)?;
            let id = c.project_id(&project).await?;
            let user_id = c.lab_member_id(id, &user).await?;
            let body = json!({ "user_id": user_id, "role": role });
            let v = c
                .send(
                    Method::POST,
                    &format!("/api/v1/projects/{id}/members"),
                    Some(body),
                )
                .await?;
            emit(c.json, &v, |_| println!("{user} is {role} of {project}"));
        }
        ProjectCommand::RemoveMember {
            remote,
            project,
            user,
        } => {
            let c = Client::new(&remote)?;
            let id = c.project_id(&project).await?;
            let user_id = c.lab_member_id(id, &user).await?;
            c.send(
                Method::DELETE,
                &format!("/api/v1/projects/{id}/members/{user_id}"),
                None,
            )
            .await?;
            emit(
                c.json,
                &json!({ "project": id, "removed": user_id }),
                |_| println!("removed {user} from {project}"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
