//! Rendering CryoSPARC's `cluster_script.sh` and the `*_cmd_tpl` command lines with minijinja.
//!
//! **Values are data, never code.** Every value a template inserts goes through this module's
//! formatter, which writes numbers and booleans bare and quotes every string for the shell
//! ([`shell_quote`]): a value holding `$(...)`, backticks, quotes, `;` or newlines stays one
//! inert word. The formatter ignores minijinja's "safe" marking, so no filter (`safe`, `e`,
//! `tojson`, ...) can turn a value into code; the only text inserted verbatim is the command
//! lines cryowarden builds itself (`run_cmd`, `run_args`, `command`: [`Builtins`], quote their
//! words with [`shell_join`]).
//!
//! The script is bash (CryoSPARC's examples start with `#!/usr/bin/env bash`), and a template
//! may put a value bare, inside its own double or single quotes, in a `#` comment or on an
//! `#SBATCH` line: [`shell_quote`] writes a value that stays inert in every one of these places
//! (a value with shell metacharacters becomes `$'\x..'`, which no newline, quote or `$` can
//! leave). Command lines are split into words as a POSIX shell would ([`split_command`]) and run
//! without a shell; there plain single quotes suffice (a template that hands its words to
//! another shell, as `ssh host {{ command }}` does, should only be given plain values).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// The variables every template may use (CryoSPARC's names); `cluster_job_id` is set for the
/// qstat/qdel templates, `command` for `send_cmd_tpl`.
pub const BUILTIN_VARIABLES: [&str; 17] = [
    "script_path_abs",
    "run_cmd",
    "num_cpu",
    "num_gpu",
    "ram_gb",
    "job_dir_abs",
    "project_dir_abs",
    "job_log_path_abs",
    "worker_bin_path",
    "run_args",
    "project_uid",
    "job_uid",
    "job_creator",
    "cryosparc_username",
    "job_type",
    "cluster_job_id",
    "command",
];
/// The job's requested resources: never set by a custom variable.
pub const FIXED_RESOURCES: [&str; 3] = ["num_cpu", "num_gpu", "ram_gb"];
/// Longest custom variable name.
pub const MAX_CUSTOM_NAME: usize = 64;
/// Longest custom value, in bytes.
pub const MAX_CUSTOM_VALUE: usize = 4096;
/// Largest `cluster_script.sh`, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// The built-in variables of one job. `run_cmd`, `run_args` and `command` are command lines
/// inserted verbatim: build them with [`shell_join`]. Everything else is quoted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Builtins {
    pub script_path_abs: String,
    pub run_cmd: String,
    pub num_cpu: u32,
    pub num_gpu: u32,
    /// CryoSPARC passes a float; a whole number renders without a fraction (`8`, not `8.0`).
    pub ram_gb: f64,
    pub job_dir_abs: String,
    pub project_dir_abs: String,
    pub job_log_path_abs: String,
    pub worker_bin_path: String,
    pub run_args: String,
    pub project_uid: String,
    pub job_uid: String,
    pub job_creator: String,
    /// CryoSPARC's name for the creator's username; kept for compatibility.
    pub cryosparc_username: String,
    pub job_type: String,
    /// For the qstat/qdel templates.
    pub cluster_job_id: Option<String>,
    /// For `send_cmd_tpl`: the command line to send.
    pub command: Option<String>,
}

/// Custom variable values at the three levels; the more specific wins: job > target > instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomValues {
    #[serde(default)]
    pub instance: BTreeMap<String, String>,
    #[serde(default)]
    pub target: BTreeMap<String, String>,
    #[serde(default)]
    pub job: BTreeMap<String, String>,
}

/// Refuses a custom variable name that is not an identifier, or that names a built-in variable
/// (the job's resources, `num_cpu`, `num_gpu`, `ram_gb`, above all).
pub fn check_custom(field: &'static str, name: &str, value: &str) -> Result<(), StoreError> {
    if FIXED_RESOURCES.contains(&name) {
        return Err(StoreError::invalid(
            field,
            format!("{name} cannot be overridden: it is the job's requested resources (set them on the job)"),
        ));
    }
    if BUILTIN_VARIABLES.contains(&name) {
        return Err(StoreError::invalid(
            field,
            format!("{name} is a built-in variable, set by cryowarden for each job: choose another name"),
        ));
    }
    let mut chars = name.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier || name.len() > MAX_CUSTOM_NAME {
        return Err(StoreError::invalid(
            field,
            format!(
                "{name:?} is not a variable name: letters, digits and '_', not starting with a digit, at most {MAX_CUSTOM_NAME}"
            ),
        ));
    }
    if value.len() > MAX_CUSTOM_VALUE {
        return Err(StoreError::invalid(field, format!("the value of {name} is over {MAX_CUSTOM_VALUE} bytes")));
    }
    if value.contains('\0') {
        return Err(StoreError::invalid(field, format!("the value of {name} contains a NUL character")));
    }
    Ok(())
}

impl CustomValues {
    /// The values in force: instance, overridden by target, overridden by job; every name and
    /// value checked ([`check_custom`]), the field naming the level.
    pub fn merged(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut merged = BTreeMap::new();
        for (field, level) in [
            ("custom_variables.instance", &self.instance),
            ("custom_variables.target", &self.target),
            ("custom_variables.job", &self.job),
        ] {
            for (name, value) in level {
                check_custom(field, name, value)?;
                merged.insert(name.clone(), value.clone());
            }
        }
        Ok(merged)
    }
}

/// How strings are quoted: for the bash script, or for a command line split by
/// [`split_command`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quoting {
    Script,
    Command,
}

/// True when `s` needs no quotes in a shell word: ASCII letters, digits and `_@%+=:,./-`, and
/// not of the form `NAME=...` (which a shell could take for an assignment).
fn is_plain_word(s: &str) -> bool {
    if s.is_empty() || !s.bytes().all(is_plain_byte) {
        return false;
    }
    match s.split_once('=') {
        Some((name, _)) => {
            let mut chars = name.chars();
            let looks_like_name = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            !looks_like_name
        }
        None => true,
    }
}

fn is_plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b)
}

/// Characters that may sit inside `'...'` in a bash script whatever the template put around the
/// value: none that means anything inside double quotes (`$`, a backtick, `"`, `\`), none that
/// would end single quotes the template opened (`'`) or act if left bare there (`;&|<>()#!`),
/// no control character.
fn single_quotable(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || "'\"$`\\;&|<>()#!".contains(c))
}

/// `s` as one inert word of a bash script, whatever the template put around it (nothing,
/// double quotes, single quotes, a `#` comment or an `#SBATCH` line): bare when plain;
/// `'...'` when [`single_quotable`]; otherwise `$'...'` with every byte that is not plain written
/// `\xHH` — bash decodes it to the exact value, while inside quotes of the template it is
/// literal text holding no `$`, backtick, quote, space or newline.
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    quote(s, Quoting::Script)
}

/// `s` as one word of a POSIX command line for [`split_command`]: bare when plain, else in
/// single quotes (a newline inside them is part of the word). No shell reads it.
pub fn command_quote(s: &str) -> Cow<'_, str> {
    quote(s, Quoting::Command)
}

fn quote(s: &str, quoting: Quoting) -> Cow<'_, str> {
    if is_plain_word(s) {
        return Cow::Borrowed(s);
    }
    if quoting == Quoting::Script && !single_quotable(s) {
        let mut out = String::with_capacity(s.len() * 2 + 3);
        out.push_str("$'");
        for b in s.bytes() {
            if is_plain_byte(b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        out.push('\'');
        return Cow::Owned(out);
    }
    Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
}

/// A command line of the words of `argv`, each quoted for bash ([`shell_quote`]): what
/// `run_cmd` should be.
pub fn shell_join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter().map(|a| shell_quote(a.as_ref()).into_owned()).collect::<Vec<_>>().join(" ")
}

/// Splits a rendered command line into words as a POSIX shell would (quotes, backslashes; a
/// `#` starting a word begins a comment). Pipes, redirections and `$` are not interpreted: the
/// words are run without a shell.
pub fn split_command(field: &'static str, line: &str) -> Result<Vec<String>, StoreError> {
    let words = shlex::split(line).ok_or_else(|| {
        StoreError::invalid(
            field,
            format!("the rendered command has an unclosed quote or a trailing backslash: {line}"),
        )
    })?;
    if words.is_empty() {
        return Err(StoreError::invalid(field, "the rendered command is empty"));
    }
    Ok(words)
}

/// A command line built by cryowarden, inserted verbatim.
#[derive(Debug)]
struct Verbatim(String);

impl Object for Verbatim {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn environment(quoting: Quoting) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(move |out, _state, value| {
        if let Some(verbatim) = value.downcast_object_ref::<Verbatim>() {
            return Ok(out.write_str(&verbatim.0)?);
        }
        if value.is_undefined() || value.is_none() {
            return Ok(());
        }
        match value.kind() {
            ValueKind::Number | ValueKind::Bool => write!(out, "{value}")?,
            // Whether or not minijinja calls it safe: a filter must not make a value code.
            ValueKind::String => out.write_str(&quote(value.as_str().unwrap_or_default(), quoting))?,
            _ => out.write_str(&quote(&value.to_string(), quoting))?,
        }
        Ok(())
    });
    env
}

fn template_error(field: &'static str, e: &Error) -> StoreError {
    let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    StoreError::invalid(field, format!("the template does not work{line}: {}{detail}", e.kind()))
}

/// Checks that `template` compiles.
pub fn check(template: &str, field: &'static str) -> Result<(), StoreError> {
    let env = environment(Quoting::Command);
    env.template_from_str(template).map(drop).map_err(|e| template_error(field, &e))
}

/// Checks a `cluster_script.sh`: its size and that it compiles.
pub fn check_script(script: &str) -> Result<(), StoreError> {
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(StoreError::invalid("cluster_script", format!("the script is over {MAX_SCRIPT_BYTES} bytes")));
    }
    check(script, "cluster_script")
}

/// The custom variables a template uses: every variable it names that it does not set itself
/// and that is neither built in nor one of minijinja's globals (`range`, `namespace`...).
pub fn custom_variables(template: &str) -> Result<BTreeSet<String>, StoreError> {
    let env = environment(Quoting::Command);
    let compiled = env.template_from_str(template).map_err(|e| template_error("template", &e))?;
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    Ok(compiled
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !BUILTIN_VARIABLES.contains(&v.as_str()) && !globals.contains(v.as_str()))
        .collect())
}

fn context(builtins: &Builtins, custom: &CustomValues) -> Result<Value, StoreError> {
    let mut vars: BTreeMap<String, Value> =
        custom.merged()?.into_iter().map(|(name, value)| (name, Value::from(value))).collect();
    let verbatim = |s: &str| Value::from_object(Verbatim(s.to_owned()));
    let ram_gb = if builtins.ram_gb.fract() == 0.0 && builtins.ram_gb.abs() < 9.0e15 {
        Value::from(builtins.ram_gb as i64)
    } else {
        Value::from(builtins.ram_gb)
    };
    let b = builtins;
    for (name, value) in [
        ("script_path_abs", Value::from(b.script_path_abs.as_str())),
        ("run_cmd", verbatim(&b.run_cmd)),
        ("num_cpu", Value::from(b.num_cpu)),
        ("num_gpu", Value::from(b.num_gpu)),
        ("ram_gb", ram_gb),
        ("job_dir_abs", Value::from(b.job_dir_abs.as_str())),
        ("project_dir_abs", Value::from(b.project_dir_abs.as_str())),
        ("job_log_path_abs", Value::from(b.job_log_path_abs.as_str())),
        ("worker_bin_path", Value::from(b.worker_bin_path.as_str())),
        ("run_args", verbatim(&b.run_args)),
        ("project_uid", Value::from(b.project_uid.as_str())),
        ("job_uid", Value::from(b.job_uid.as_str())),
        ("job_creator", Value::from(b.job_creator.as_str())),
        ("cryosparc_username", Value::from(b.cryosparc_username.as_str())),
        ("job_type", Value::from(b.job_type.as_str())),
    ] {
        vars.insert(name.to_owned(), value);
    }
    if let Some(id) = &b.cluster_job_id {
        vars.insert("cluster_job_id".into(), Value::from(id.as_str()));
    }
    if let Some(command) = &b.command {
        vars.insert("command".into(), verbatim(command));
    }
    Ok(Value::from_iter(vars))
}

/// Renders `template` (the field it came from names it in errors) with the job's built-ins and
/// the custom values in force, every inserted string quoted for `quoting`.
pub fn render(
    template: &str,
    field: &'static str,
    quoting: Quoting,
    builtins: &Builtins,
    custom: &CustomValues,
) -> Result<String, StoreError> {
    let ctx = context(builtins, custom)?;
    let env = environment(quoting);
    let compiled = env.template_from_str(template).map_err(|e| template_error(field, &e))?;
    compiled.render(ctx).map_err(|e| template_error(field, &e))
}

/// Renders a `cluster_script.sh`.
pub fn render_script(script: &str, builtins: &Builtins, custom: &CustomValues) -> Result<String, StoreError> {
    check_script(script)?;
    render(script, "cluster_script", Quoting::Script, builtins, custom)
}

/// Renders one of the `*_cmd_tpl` templates into a command line (split it with
/// [`split_command`]).
pub fn render_command(
    template: &str,
    field: &'static str,
    builtins: &Builtins,
    custom: &CustomValues,
) -> Result<String, StoreError> {
    let line = render(template, field, Quoting::Command, builtins, custom)?;
    Ok(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_and_message(e: StoreError) -> (&'static str, String) {
        match e {
            StoreError::Invalid { field, message } => (field, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("cryosparc_P1_J2"), "cryosparc_P1_J2");
        assert_eq!(shell_quote("--mem=4G"), "--mem=4G");
        assert_eq!(shell_quote("/a/b-c.d:e,f@g%h+i"), "/a/b-c.d:e,f@g%h+i");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("LD_PRELOAD=/x.so"), "'LD_PRELOAD=/x.so'");
        assert_eq!(shell_quote("~root [a]*?{b,c}"), "'~root [a]*?{b,c}'");
        assert_eq!(shell_quote("it's"), r"$'it\x27s'");
        assert_eq!(shell_quote("a\nb"), r"$'a\x0ab'");
        assert_eq!(shell_quote("$(x) y"), r"$'\x24\x28x\x29\x20y'");
        assert_eq!(shell_quote("é"), "'é'");
        assert_eq!(shell_quote("é;"), r"$'\xc3\xa9\x3b'");
        assert_eq!(command_quote("it's"), r"'it'\''s'");
        assert_eq!(command_quote("a\nb"), "'a\nb'");
        assert_eq!(shell_join(&["echo", "a b", "$x"]), r"echo 'a b' $'\x24x'");
    }

    #[test]
    fn command_lines_split_back_into_the_words() {
        let nasty = ["plain", "a b", "it's", "$(touch PWNED)", "`id`", "a\nb", "x;y", "\"q\"", "", "#c"];
        let line = nasty.iter().map(|w| command_quote(w).into_owned()).collect::<Vec<_>>().join(" ");
        assert_eq!(split_command("f", &line).unwrap(), nasty);
        assert_eq!(field_and_message(split_command("qsub_cmd_tpl", "sbatch 'x").unwrap_err()).0, "qsub_cmd_tpl");
        assert!(split_command("f", "  ").is_err());
    }

    #[test]
    fn custom_variables_are_the_undeclared_non_builtins() {
        let t = "#SBATCH -A {{ account }}\n{% set x = 1 %}{{ x }}{% for i in range(num_cpu) %}{{ i }}{{ qos|default('normal') }}{% endfor %}{{ run_cmd }}";
        assert_eq!(custom_variables(t).unwrap(), BTreeSet::from(["account".to_owned(), "qos".to_owned()]));
        assert!(custom_variables("{{ oops").is_err());
    }

    #[test]
    fn levels_merge_and_resources_are_fixed() {
        let custom = CustomValues {
            instance: BTreeMap::from([("a".into(), "instance".into()), ("b".into(), "instance".into())]),
            target: BTreeMap::from([("b".into(), "target".into()), ("c".into(), "target".into())]),
            job: BTreeMap::from([("c".into(), "job".into())]),
        };
        let merged = custom.merged().unwrap();
        assert_eq!(merged.values().map(String::as_str).collect::<Vec<_>>(), ["instance", "target", "job"]);
        for fixed in FIXED_RESOURCES {
            let custom = CustomValues { job: BTreeMap::from([(fixed.into(), "64".into())]), ..Default::default() };
            let (field, message) = field_and_message(custom.merged().unwrap_err());
            assert_eq!(field, "custom_variables.job");
            assert!(message.contains("cannot be overridden"), "{message}");
        }
        let builtin = CustomValues { target: BTreeMap::from([("run_cmd".into(), "x".into())]), ..Default::default() };
        assert_eq!(field_and_message(builtin.merged().unwrap_err()).0, "custom_variables.target");
        let bad = CustomValues { instance: BTreeMap::from([("1x".into(), "x".into())]), ..Default::default() };
        assert_eq!(field_and_message(bad.merged().unwrap_err()).0, "custom_variables.instance");
    }

    #[test]
    fn numbers_are_bare_strings_quoted_and_filters_cannot_unquote() {
        let b = Builtins {
            num_cpu: 4,
            ram_gb: 8.0,
            run_cmd: "echo 'hi there'".into(),
            job_creator: "Ada Lovelace".into(),
            ..Default::default()
        };
        let custom =
            CustomValues { job: BTreeMap::from([("v".into(), "$(touch PWNED)".into())]), ..Default::default() };
        let t = "{{ num_cpu }} {{ ram_gb }} {{ (ram_gb*1000)|int }} {{ ram_gb / 3 > 2 }} {{ job_creator }} {{ run_cmd }} \
                 {{ v|safe }} {{ v|e }} {{ v|string }} {{ v|upper }} {{ missing }}|{{ none }}|";
        let out = render(t, "t", Quoting::Command, &b, &custom).unwrap();
        let words = split_command("t", &out).unwrap();
        assert_eq!(
            words,
            ["4", "8", "8000", "True", "Ada Lovelace", "echo", "hi there", "$(touch PWNED)", "$(touch PWNED)"]
                .into_iter()
                .chain(["$(touch PWNED)", "$(TOUCH PWNED)", "||"])
                .collect::<Vec<_>>(),
            "{out}"
        );
    }
}
