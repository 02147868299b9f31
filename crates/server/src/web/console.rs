//! `/admin/console`: the Admin Console page. The three groups, each row the viewer may see with
//! an "editable" or "read-only" mark and its content: a form where the viewer may change it
//! (static/console.js sends it to `PUT /api/v1/console/{key}`), values where they may only read,
//! a link where the content lives on another page. Rows are `#setting-<key>` with
//! `data-setting` and `data-access`; what a viewer sees comes from `authorize()` alone
//! (`console::access`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde_json::Value as Json;

use super::{PageCaller, base_context, message, render, with};
use crate::console::{self, Group, Kind, Location};
use crate::state::AppState;

fn lookup<'a>(v: &'a Json, dotted: &str) -> &'a Json {
    dotted.split('.').fold(v, |v, k| &v[k])
}

fn shown(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Array(a) => a.iter().map(shown).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Text => "text",
        Kind::LongText => "longtext",
        Kind::Number => "number",
        Kind::Bool => "bool",
        Kind::Lines => "lines",
        Kind::Secret => "secret",
        Kind::Choice(_) => "choice",
        Kind::Info => "info",
    }
}

pub async fn console_page(State(state): State<Arc<AppState>>, caller: PageCaller) -> Response {
    let actor = caller.principal.actor();
    let ctx = caller.ctx();
    let base = base_context(&state, Some(&caller), "admin").await;
    if let Err(e) = console::require_console(&state, &ctx).await {
        return super::error_page(base, e);
    }
    let raw_json = console::experimental::flags(&state.db)
        .await
        .map(|f| f.console_raw_json)
        .unwrap_or(false);
    let mut groups = Vec::new();
    for group in Group::ALL {
        let mut rows = Vec::new();
        for e in console::registry().filter(|e| e.group == group) {
            let Some(access) = console::access(&actor, e.setting) else {
                continue;
            };
            let editable = access.access == "all";
            let (value, available) = match console::view(&state, &ctx, e.setting).await {
                Ok(v) => {
                    let available = v.get("available") != Some(&Json::Bool(false));
                    (v, available)
                }
                Err(err) => {
                    tracing::error!(setting = %e.setting, error = %err, "console row failed");
                    (Json::Null, false)
                }
            };
            let fields: Vec<Value> = e
                .fields
                .iter()
                .map(|f| {
                    let top = f.name.split('.').next().unwrap_or(f.name);
                    let v = lookup(&value, f.name);
                    let options: Vec<&str> = match f.kind {
                        Kind::Choice(o) => o.to_vec(),
                        _ => vec![],
                    };
                    context! {
                        name => f.name,
                        id => format!("{}--{}", e.setting, f.name.replace('.', "-")),
                        label => f.label,
                        kind => kind_name(f.kind),
                        value => shown(v),
                        checked => v.as_bool().unwrap_or(false),
                        editable => editable && f.kind != Kind::Info && !access.read_only_fields.contains(&top),
                        options => options,
                    }
                })
                .collect();
            let (location, href) = match e.location {
                Location::Link(h) => ("link", Some(h)),
                Location::Inspect => ("inspect", None),
                Location::Unavailable => ("unavailable", None),
                Location::Here | Location::Instance => ("here", None),
            };
            rows.push(context! {
                key => e.setting.as_str(),
                title => e.title,
                description => e.description,
                access => access.access,
                read_only_fields => access.read_only_fields,
                location,
                href,
                fields,
                actions => e.actions.iter().map(|(a, l)| context! { name => a, label => l }).collect::<Vec<_>>(),
                available,
                value_text => if available && location == "inspect" { serde_json::to_string_pretty(&value).unwrap_or_default() } else { String::new() },
                raw_json => if raw_json { serde_json::to_string_pretty(&value).unwrap_or_default() } else { String::new() },
            });
        }
        if !rows.is_empty() {
            groups.push(context! { id => format!("{group:?}").to_lowercase(), title => group.title(), rows });
        }
    }
    if groups.is_empty() {
        return message(
            base,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "The Admin Console is not open to your role.",
        );
    }
    let tabs = super::panel::tabs(&actor);
    render(
        "admin_console.html",
        with(base, context! { tabs, current_tab => "console", groups }),
    )
}
