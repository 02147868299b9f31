//! Rendering CryoSPARC's `cluster_script.sh` and the `*_cmd_tpl` command lines with minijinja.
//!
//! **Values are data, never code.** Every value a template inserts goes through this module's
//! formatter, which writes numbers and booleans bare and quotes every string for the shell
//! ([`shell_quote`], [`sh_quote`]): a value holding `$(...)`, backticks, quotes, `;` or newlines
//! stays one inert word. The formatter ignores minijinja's "safe" marking, so no filter (`safe`,
//! `e`, `tojson`, ...) can turn a value into code; the only text inserted verbatim is the command
//! lines cryowarden builds itself (`run_cmd`, `run_args`, `command`: [`Builtins`], quote their
//! words with [`shell_join`]).
//!
//! The script is bash (CryoSPARC's examples start with `#!/usr/bin/env bash`), and a template
//! may put a value bare, inside its own double or single quotes, in a `#` comment or on an
//! `#SBATCH` line: [`shell_quote`] writes a value that stays inert in every one of these places
//! (a value with shell metacharacters becomes `$'\x..'`, which no newline, quote or `$` can
//! leave). Command lines are shell command lines, as in CryoSPARC (`. /etc/profile.d/slurm.sh ;
//! sbatch ...`, pipes, `VAR=value sbatch ...`): they run with `/bin/sh -c` (dash on Debian, which
//! has no `$'...'`), so their values are quoted by [`sh_quote`]: bare when plain, `'...'` when
//! that is inert anywhere, else `"$(printf '\NNN...')"`, which any POSIX shell decodes to the
//! exact value and which holds no quote, `$(` or backtick a template's own quotes could free.
//! `send_cmd_tpl` receives the command line as ONE word ([`send_line`]), which `ssh host
//! {{ command }}` hands whole to the remote shell.

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
            format!(
                "{name} cannot be overridden: it is the job's requested resources (set them on the job)"
            ),
        ));
    }
    if BUILTIN_VARIABLES.contains(&name) {
        return Err(StoreError::invalid(
            field,
            format!(
                "{name} is a built-in variable, set by cryowarden for each job: choose another name"
            ),
        ));
    }
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
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
        return Err(StoreError::invalid(
            field,
            format!("the value of {name} is over {MAX_CUSTOM_VALUE} bytes"),
        ));
    }
    if value.contains('\0') {
        return Err(StoreError::invalid(
            field,
            format!("the value of {name} contains a NUL character"),
        ));
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

/// How strings are quoted: for the bash script, or for a command line run by `/bin/sh -c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quoting {
    Script,
    Sh,
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
            let looks_like_name = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
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
    !s.chars()
        .any(|c| c.is_control() || "'\"$`\\;&|<>()#!".contains(c))
}

/// `s` as one inert word of a bash script, whatever the template put around it (nothing,
/// double quotes, single quotes, a `#` comment or an `#SBATCH` line): bare when plain;
/// `'...'` when [`single_quotable`]; otherwise `$'...'` with every byte that is not plain written
/// `\xHH` — bash decodes it to the exact value, while inside quotes of the template it is
/// literal text holding no `$`, backtick, quote, space or newline.
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    quote(s, Quoting::Script)
}

/// `s` as one inert word of a POSIX `sh` command line, whatever the template put around it:
/// bare when plain; `'...'` when [`single_quotable`]; otherwise `"$(printf '\NNN...')"`, every
/// byte that is not plain written as an octal escape (`%` as `%%`): any POSIX shell prints the
/// exact value back (a command substitution drops trailing newlines, so a value that ends with
/// one is refused by [`render_command`]); inside the template's own single quotes it is literal
/// text holding no quote, and inside its double quotes an expansion whose result is not code.
pub fn sh_quote(s: &str) -> Cow<'_, str> {
    quote(s, Quoting::Sh)
}

/// `s` as one word for a POSIX shell, in single quotes (`'\''` for a quote): how the command
/// line is given to `send_cmd_tpl`.
pub fn posix_word(s: &str) -> String {
    if is_plain_word(s) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quote(s: &str, quoting: Quoting) -> Cow<'_, str> {
    if is_plain_word(s) {
        return Cow::Borrowed(s);
    }
    if quoting == Quoting::Sh && !single_quotable(s) {
        let mut out = String::with_capacity(s.len() * 4 + 16);
        out.push_str("\"$(printf '");
        for b in s.bytes() {
            if b == b'%' {
                out.push_str("%%");
            } else if is_plain_byte(b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "\\{b:03o}");
            }
        }
        out.push_str("')\"");
        return Cow::Owned(out);
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
    argv.iter()
        .map(|a| shell_quote(a.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
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
            ValueKind::String => {
                let text = value.as_str().unwrap_or_default();
                if quoting == Quoting::Sh && text.ends_with('\n') {
                    return Err(Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        "a value ending with a newline cannot be given to a command line",
                    ));
                }
                out.write_str(&quote(text, quoting))?;
            }
            _ => out.write_str(&quote(&value.to_string(), quoting))?,
        }
        Ok(())
    });
    env
}

fn template_error(field: &'static str, e: &Error) -> StoreError {
    let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    StoreError::invalid(
        field,
        format!("the template does not work{line}: {}{detail}", e.kind()),
    )
}

/// Checks that `template` compiles.
pub fn check(template: &str, field: &'static str) -> Result<(), StoreError> {
    let env = environment(Quoting::Sh);
    env.template_from_str(template)
        .map(drop)
        .map_err(|e| template_error(field, &e))
}

/// Checks a `cluster_script.sh`: its size and that it compiles.
pub fn check_script(script: &str) -> Result<(), StoreError> {
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(StoreError::invalid(
            "cluster_script",
            format!("the script is over {MAX_SCRIPT_BYTES} bytes"),
        ));
    }
    check(script, "cluster_script")
}

/// The custom variables a template uses: every variable it names that it does not set itself
/// and that is neither built in nor one of minijinja's globals (`range`, `namespace`...).
pub fn custom_variables(template: &str) -> Result<BTreeSet<String>, StoreError> {
    let env = environment(Quoting::Sh);
    let compiled = env
        .template_from_str(template)
        .map_err(|e| template_error("template", &e))?;
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    Ok(compiled
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !BUILTIN_VARIABLES.contains(&v.as_str()) && !globals.contains(v.as_str()))
        .collect())
}

fn context(builtins: &Builtins, custom: &CustomValues) -> Result<Value, StoreError> {
    let mut vars: BTreeMap<String, Value> = custom
        .merged()?
        .into_iter()
        .map(|(name, value)| (name, Value::from(value)))
        .collect();
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
        (
            "cryosparc_username",
            Value::from(b.cryosparc_username.as_str()),
        ),
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
    let compiled = env
        .template_from_str(template)
        .map_err(|e| template_error(field, &e))?;
    compiled.render(ctx).map_err(|e| template_error(field, &e))
}

/// Renders a `cluster_script.sh`.
pub fn render_script(
    script: &str,
    builtins: &Builtins,
    custom: &CustomValues,
) -> Result<String, StoreError> {
    check_script(script)?;
    render(script, "cluster_script", Quoting::Script, builtins, custom)
}

/// Renders one of the `*_cmd_tpl` templates into a command line for `/bin/sh -c` (wrap it in
/// `send_cmd_tpl` with [`send_line`]).
pub fn render_command(
    template: &str,
    field: &'static str,
    builtins: &Builtins,
    custom: &CustomValues,
) -> Result<String, StoreError> {
    let line = render(template, field, Quoting::Sh, builtins, custom)?;
    let line = line.trim();
    if line.is_empty() {
        return Err(StoreError::invalid(field, "the rendered command is empty"));
    }
    Ok(line.to_owned())
}

/// True when `send_cmd_tpl` is just `{{ command }}` (the default): the command runs as it is.
pub fn sends_as_is(send_cmd_tpl: &str) -> bool {
    let compact: String = send_cmd_tpl
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    matches!(
        compact.as_str(),
        "{{command}}" | "{{-command}}" | "{{command-}}" | "{{-command-}}"
    )
}

/// The command line that runs `line` through `send_cmd_tpl` (CryoSPARC's `ssh loginnode
/// {{ command }}`): `line` itself for the default template, else the template rendered with
/// `command` = `line` as ONE shell word (what `ssh` hands to the remote shell, or a local
/// wrapper gets as `$1`), every other value quoted as in any command template.
pub fn send_line(
    send_cmd_tpl: &str,
    line: &str,
    builtins: &Builtins,
    custom: &CustomValues,
) -> Result<String, StoreError> {
    if sends_as_is(send_cmd_tpl) {
        return Ok(line.to_owned());
    }
    let b = Builtins {
        command: Some(posix_word(line)),
        ..builtins.clone()
    };
    render_command(send_cmd_tpl, "send_cmd_tpl", &b, custom)
}

/// True when `template` uses the variable `name` (outside what it sets itself).
pub fn uses_variable(template: &str, name: &str) -> bool {
    let env = environment(Quoting::Sh);
    env.template_from_str(template)
        .is_ok_and(|t| t.undeclared_variables(false).contains(name))
}

/// Built-ins with sample values, for rendering every template once when a cluster is connected.
pub fn sample_builtins() -> Builtins {
    let dir = "/cryowarden/sample/projects/P1/J1";
    Builtins {
        script_path_abs: format!("{dir}/queue_sub_script.sh"),
        run_cmd: "/bin/true --sample".into(),
        num_cpu: 2,
        num_gpu: 1,
        ram_gb: 8.0,
        job_dir_abs: dir.into(),
        project_dir_abs: "/cryowarden/sample/projects/P1".into(),
        job_log_path_abs: format!("{dir}/job.log"),
        worker_bin_path: "/cryowarden/sample/bin/cryosparcw".into(),
        run_args: "--sample".into(),
        project_uid: "P1".into(),
        job_uid: "J1".into(),
        job_creator: "sample".into(),
        cryosparc_username: "sample".into(),
        job_type: "validation".into(),
        cluster_job_id: Some("1".into()),
        command: Some("true".into()),
    }
}

/// Renders the script and every command template once with sample values (each custom
/// variable "1" unless `known` gives it a value), so that a construct cryowarden cannot render
/// (Python's string methods such as `.split()`, a filter it lacks) is refused when the cluster is
/// connected, naming the field, rather than when a job is launched.
pub fn check_renders(
    script: &str,
    templates: &[(&'static str, &str)],
    known: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let mut names = custom_variables(script).map_err(|e| rename_field(e, "cluster_script"))?;
    for &(field, tpl) in templates {
        names.extend(custom_variables(tpl).map_err(|e| rename_field(e, field))?);
    }
    let sample: BTreeMap<String, String> = names
        .into_iter()
        .filter(|n| check_custom("custom_variables", n, "1").is_ok())
        .map(|n| {
            let value = known.get(&n).cloned().unwrap_or_else(|| "1".to_owned());
            (n, value)
        })
        .collect();
    let custom = CustomValues {
        instance: sample,
        ..Default::default()
    };
    let b = sample_builtins();
    render_script(script, &b, &custom)?;
    for &(field, tpl) in templates {
        render_command(tpl, field, &b, &custom)?;
    }
    Ok(())
}

fn rename_field(e: StoreError, field: &'static str) -> StoreError {
    match e {
        StoreError::Invalid { message, .. } => StoreError::Invalid { field, message },
        other => other,
    }
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
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's 100%"), r#""$(printf 'it\047s\040100%%')""#);
        assert_eq!(posix_word("it's"), r"'it'\''s'");
        assert_eq!(shell_join(&["echo", "a b", "$x"]), r"echo 'a b' $'\x24x'");
    }

    /// The words `/bin/sh -c line` passes to printf, NUL-separated.
    fn sh_words(line: &str) -> Vec<String> {
        let script = format!("printf '%s\\0' {line}");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        text.strip_suffix('\0')
            .unwrap_or(&text)
            .split('\0')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn command_lines_give_sh_the_exact_words() {
        let nasty = [
            "plain",
            "a b",
            "it's",
            "$(touch PWNED)",
            "`id`",
            "a\nb",
            "x;y",
            "\"q\"",
            "",
            "#c",
            "100% \\n é;",
        ];
        let line = nasty
            .iter()
            .map(|w| sh_quote(w).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(sh_words(&line), nasty);
        let line = nasty
            .iter()
            .map(|w| posix_word(w))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(sh_words(&line), nasty);
        let b = Builtins::default();
        let (field, _) = field_and_message(
            render_command("  ", "qsub_cmd_tpl", &b, &Default::default()).unwrap_err(),
        );
        assert_eq!(field, "qsub_cmd_tpl");
        let trailing = CustomValues {
            job: BTreeMap::from([("v".into(), "x\n".into())]),
            ..Default::default()
        };
        let (field, message) = field_and_message(
            render_command("echo {{ v }}", "qdel_cmd_tpl", &b, &trailing).unwrap_err(),
        );
        assert!(
            field == "qdel_cmd_tpl" && message.contains("newline"),
            "{message}"
        );
        // send_cmd_tpl gets the command line as one word.
        let sent = send_line(
            "ssh login {{ command }}",
            ". /etc/x ; sbatch 'a b'",
            &b,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(sent, r"ssh login '. /etc/x ; sbatch '\''a b'\'''");
        assert_eq!(
            send_line(" {{command}} ", "sbatch x | cut", &b, &Default::default()).unwrap(),
            "sbatch x | cut"
        );
    }

    #[test]
    fn custom_variables_are_the_undeclared_non_builtins() {
        let t = "#SBATCH -A {{ account }}\n{% set x = 1 %}{{ x }}{% for i in range(num_cpu) %}{{ i }}{{ qos|default('normal') }}{% endfor %}{{ run_cmd }}";
        assert_eq!(
            custom_variables(t).unwrap(),
            BTreeSet::from(["account".to_owned(), "qos".to_owned()])
        );
        assert!(custom_variables("{{ oops").is_err());
    }

    #[test]
    fn levels_merge_and_resources_are_fixed() {
        let custom = CustomValues {
            instance: BTreeMap::from([
                ("a".into(), "instance".into()),
                ("b".into(), "instance".into()),
            ]),
            target: BTreeMap::from([("b".into(), "target".into()), ("c".into(), "target".into())]),
            job: BTreeMap::from([("c".into(), "job".into())]),
        };
        let merged = custom.merged().unwrap();
        assert_eq!(
            merged.values().map(String::as_str).collect::<Vec<_>>(),
            ["instance", "target", "job"]
        );
        for fixed in FIXED_RESOURCES {
            let custom = CustomValues {
                job: BTreeMap::from([(fixed.into(), "64".into())]),
                ..Default::default()
            };
            let (field, message) = field_and_message(custom.merged().unwrap_err());
            assert_eq!(field, "custom_variables.job");
            assert!(message.contains("cannot be overridden"), "{message}");
        }
        let builtin = CustomValues {
            target: BTreeMap::from([("run_cmd".into(), "x".into())]),
            ..Default::default()
        };
        assert_eq!(
            field_and_message(builtin.merged().unwrap_err()).0,
            "custom_variables.target"
        );
        let bad = CustomValues {
            instance: BTreeMap::from([("1x".into(), "x".into())]),
            ..Default::default()
        };
        assert_eq!(
            field_and_message(bad.merged().unwrap_err()).0,
            "custom_variables.instance"
        );
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
        let custom = CustomValues {
            job: BTreeMap::from([("v".into(), "$(touch PWNED)".into())]),
            ..Default::default()
        };
        let t = "{{ num_cpu }} {{ ram_gb }} {{ (ram_gb*1000)|int }} {{ ram_gb / 3 > 2 }} {{ job_creator }} {{ run_cmd }} \
                 {{ v|safe }} {{ v|e }} {{ v|string }} {{ v|upper }} x{{ missing }}y{{ none }}z";
        let out = render(t, "t", Quoting::Sh, &b, &custom).unwrap();
        let words = sh_words(&out);
        assert_eq!(
            words,
            [
                "4",
                "8",
                "8000",
                "True",
                "Ada Lovelace",
                "echo",
                "hi there",
                "$(touch PWNED)",
                "$(touch PWNED)"
            ]
            .into_iter()
            .chain(["$(touch PWNED)", "$(TOUCH PWNED)", "xyz"])
            .collect::<Vec<_>>(),
            "{out}"
        );
    }
}
