//! The man page, civikey(1): the synopsis, options and every command from the clap
//! definitions, the keys, environment and exit codes from [`crate::reference`], and the
//! hand-written sections kept in docs/man/. It names no other civikey page: there is one.

use clap::{Arg, ArgAction, Command};
use roff::{bold, italic, roman, Roff};

use super::reference;

const FILES: &str = include_str!("../../docs/man/files.roff");
const SECURITY: &str = include_str!("../../docs/man/security.roff");
const EXAMPLES: &str = include_str!("../../docs/man/examples.roff");
const SEE_ALSO: &str = include_str!("../../docs/man/see-also.roff");

/// The whole page, in roff.
pub fn render(cmd: Command) -> std::io::Result<Vec<u8>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("civikey {version}"))
        .manual("User Commands");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    page.extend_from_slice(synopsis(&cmd).render().as_bytes());
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for sub in visible_subcommands(&cmd) {
        command(&mut roff, sub, "civikey");
    }
    keys(&mut roff);
    page.extend_from_slice(roff.render().as_bytes());
    page.extend_from_slice(FILES.as_bytes());

    let mut roff = Roff::new();
    environment(&mut roff);
    exit_status(&mut roff);
    page.extend_from_slice(roff.render().as_bytes());
    for section in [SECURITY, EXAMPLES, SEE_ALSO] {
        page.extend_from_slice(section.as_bytes());
    }
    Ok(page)
}

/// `civikey [--store ADDRESS] [--profile NAME] [--read-only] [COMMAND]`: the global
/// options with their values (clap_mangen's own synopsis leaves the values out).
fn synopsis(cmd: &Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    let mut usage = vec![bold(cmd.get_name().to_string())];
    let options = cmd.get_arguments().filter(|a| {
        !a.is_hide_set() && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
    });
    for arg in options {
        usage.push(roman(" "));
        usage.extend(arg_usage(arg, true));
    }
    usage.push(roman(" ["));
    usage.push(italic("COMMAND"));
    usage.push(roman("]"));
    roff.text(usage);
    roff
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

/// One command: its usage line, its long help, its own options; then its subcommands.
fn command(roff: &mut Roff, cmd: &Command, parent: &str) {
    let name = format!("{parent} {}", cmd.get_name());
    if cmd.has_subcommands() {
        for sub in visible_subcommands(cmd) {
            command(roff, sub, &name);
        }
        return;
    }
    let mut usage = vec![bold(name.clone())];
    for arg in own_args(cmd) {
        usage.push(roman(" "));
        usage.extend(arg_usage(arg, true));
    }
    roff.control("SS", [name.as_str()]);
    roff.text(usage);
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        for paragraph in about.to_string().split("\n\n") {
            roff.control("PP", []);
            roff.text([roman(paragraph.replace('\n', " "))]);
        }
    }
    for arg in own_args(cmd) {
        roff.control("TP", []);
        roff.text(arg_usage(arg, false));
        let mut help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() && arg.get_action().takes_values() {
            help.push_str(&format!(" (one of: {})", values.join(", ")));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && arg.get_action().takes_values() {
            help.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        roff.text([roman(help)]);
    }
}

/// A command's own arguments: not the global ones (the OPTIONS section has them), not
/// --help.
fn own_args(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        !a.is_hide_set() && !a.is_global_set() && !matches!(a.get_action(), ArgAction::Help)
    })
}

/// `--limit LIMIT`; in a synopsis (`optional_in_brackets`) an optional one is `[...]`.
fn arg_usage(arg: &Arg, optional_in_brackets: bool) -> Vec<roff::Inline> {
    let value = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    let mut parts = Vec::new();
    match arg.get_long() {
        Some(long) => {
            parts.push(bold(format!("--{long}")));
            if arg.get_action().takes_values() {
                parts.push(roman(" "));
                parts.push(italic(value));
            }
        }
        None => parts.push(italic(value)),
    }
    if optional_in_brackets && !arg.is_required_set() {
        parts.insert(0, roman("["));
        parts.push(roman("]"));
    }
    parts
}

fn keys(roff: &mut Roff) {
    roff.control("SH", ["INTERACTIVE SCREEN"]);
    roff.text([roman(
        "With no command, civikey opens its screen on the chosen store: the contacts, one \
         selected, its details below, the keys that work now at the bottom. It needs a \
         terminal of at least 80x24 (smaller ones show a notice). These keys work there \
         (? shows the same table):",
    )]);
    roff.control("sp", []);
    roff.control("PD", ["0"]);
    for (keys, does) in reference::TUI_KEYS {
        roff.control("TP", ["20"]);
        roff.text([bold(*keys)]);
        roff.text([roman(*does)]);
    }
    roff.control("PD", []);
}

fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in reference::ENVIRONMENT {
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*meaning)]);
    }
    roff.control("PP", []);
    roff.text([roman(reference::SECRET_VARIABLES)]);
}

fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in reference::EXIT_CODES {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(*meaning)]);
    }
    roff.control("PP", []);
    roff.text([roman(
        "A command that only reads (list, show, audit, profiles, config path, completions, \
         man) whose reader goes away early, as in civikey list | head, ends quietly, killed \
         by SIGPIPE as coreutils are (status 141 in a shell). A command that prints a newly \
         assigned key (rotate) never ends that way: it reports the failure.",
    )]);
}
