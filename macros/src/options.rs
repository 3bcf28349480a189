//! The macros' arguments: `key = value` options parsed into `Builder` calls.
//!
//! # Ground rules
//!
//! - Every option is a row of [`KNOWN`]: its name, the kind of value it takes, which macro
//!   accepts it, and the `Builder` method it becomes. Nothing else is accepted; an unknown
//!   name gets an error listing the names the macro knows (and the nearest one, if close).
//! - Values are checked at compile time (`values.rs`), as far as syntax allows: a bool is
//!   `true` or `false`, a count or seed an integer literal, a duration a string with a unit,
//!   a strategy one of `Fifo`, `Random`, `Pct(depth)`. What would only fail at run time (a
//!   duration without a unit, `seeds = 0`) is an error here instead.
//! - Every error is collected, not just the first (`errors.rs`), and each one names the fix.
//! - The generated code names only `::treeloop::` and `::core` paths, so a user depends on
//!   `treeloop` alone.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Meta, Token};

use crate::errors::Errors;
use crate::values::{Kind, Value, parse_value};

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    /// `#[treeloop::main]`.
    Main,
    /// `#[treeloop::test]`.
    Test,
}

impl Macro {
    /// The attribute as a user writes it, for messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Macro::Main => "#[treeloop::main]",
            Macro::Test => "#[treeloop::test]",
        }
    }
}

/// Which macro accepts an option.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accepted {
    /// Both.
    Both,
    /// `#[treeloop::main]` only: the option changes the whole process (signal handlers),
    /// and a test binary runs many tests at once.
    MainOnly,
    /// `#[treeloop::test]` only.
    TestOnly,
}

impl Accepted {
    /// Whether `which` accepts the option.
    fn takes(self, which: Macro) -> bool {
        matches!(
            (self, which),
            (Accepted::Both, _)
                | (Accepted::MainOnly, Macro::Main)
                | (Accepted::TestOnly, Macro::Test)
        )
    }
}

/// One known option.
struct Known {
    /// The name written in the attribute.
    name: &'static str,
    /// The `Builder` method it calls: its name, but for aliases (and `seeds`, which picks
    /// `test::check_with` instead).
    method: &'static str,
    /// What value it takes.
    kind: Kind,
    /// Which macro takes it.
    accepted: Accepted,
}

/// Every option, in the order the docs list them.
const KNOWN: &[Known] = &[
    known("start_paused", Kind::Bool, Accepted::Both),
    known("seeds", Kind::Count, Accepted::TestOnly),
    known("seed", Kind::Seed, Accepted::Both),
    known("strategy", Kind::Strategy, Accepted::Both),
    known("shutdown_on_signal", Kind::Bool, Accepted::MainOnly),
    // The plural reads as naturally ("shut down on signals"): the same option.
    alias(
        "shutdown_on_signals",
        "shutdown_on_signal",
        Kind::Bool,
        Accepted::MainOnly,
    ),
    known("shutdown_on_ctrl_c", Kind::Bool, Accepted::MainOnly),
    known("shutdown_signals", Kind::Signals, Accepted::MainOnly),
    known("dump_on_signal", Kind::Bool, Accepted::MainOnly),
    known("report_deadlocks", Kind::Bool, Accepted::Both),
    known("allow_real_io", Kind::Bool, Accepted::Both),
    known("diagnostics", Kind::Bool, Accepted::Both),
    known("slow_poll_threshold", Kind::Duration, Accepted::Both),
    known("stall_watchdog", Kind::Duration, Accepted::Both),
    known("stall_grace", Kind::Duration, Accepted::Both),
];

/// A row of [`KNOWN`].
const fn known(name: &'static str, kind: Kind, accepted: Accepted) -> Known {
    alias(name, name, kind, accepted)
}

/// A row of [`KNOWN`] whose name is another name for `method`.
const fn alias(name: &'static str, method: &'static str, kind: Kind, accepted: Accepted) -> Known {
    Known {
        name,
        method,
        kind,
        accepted,
    }
}

/// One option as given: which row, its value, and where it was written.
struct Given {
    /// Its row in [`KNOWN`].
    known: &'static Known,
    /// Its checked value.
    value: Value,
    /// The option's name as written, for errors about it.
    name: syn::Path,
}

/// The options of one attribute, checked alone and against each other.
pub(crate) struct Options {
    /// In the order written.
    given: Vec<Given>,
}

impl Options {
    /// Parses and checks `args`, the tokens between the attribute's parentheses. Pushes
    /// every mistake to `errors`, and returns the options that were right.
    pub(crate) fn parse(which: Macro, args: TokenStream, errors: &mut Errors) -> Options {
        let parsed = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args);
        let metas = errors.keep(parsed).unwrap_or_default();
        let mut given: Vec<Given> = Vec::new();
        for meta in metas {
            let Some(option) = errors.keep(parse_one(which, &meta)) else {
                continue;
            };
            if given.iter().any(|g| g.known.name == option.known.name) {
                errors.push(Error::new_spanned(
                    &option.name,
                    format!("`{}` is given twice: remove one", option.known.name),
                ));
                continue;
            }
            given.push(option);
        }
        let options = Options { given };
        options.check_together(which, errors);
        options
    }

    /// The value of option `name`, if given.
    fn get(&self, name: &str) -> Option<&Given> {
        self.given.iter().find(|g| g.known.name == name)
    }

    /// `seeds = N`, if given: the test then runs under `test::check_with`.
    pub(crate) fn seeds(&self) -> Option<u64> {
        match self.get("seeds")?.value {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The rules between options: what needs what, and what excludes what.
    fn check_together(&self, which: Macro, errors: &mut Errors) {
        let seeded = self.get("seeds").is_some() || self.get("seed").is_some();
        let add_seed = match which {
            Macro::Main => "add `seed = S`",
            Macro::Test => "add `seeds = N` (or `seed = S`)",
        };
        if let (Some(seed), Some(_)) = (self.get("seed"), self.get("seeds")) {
            errors.push(Error::new_spanned(
                &seed.name,
                "`seed` and `seeds` exclude each other: `seeds = N` runs seeds 0 to N - 1, \
                 `seed = S` runs seed S alone; keep one",
            ));
        }
        if let Some(strategy) = self.get("strategy")
            && !seeded
        {
            errors.push(Error::new_spanned(
                &strategy.name,
                format!(
                    "`strategy` picks the next task with numbers drawn from the seed, and \
                     there is none: {add_seed}"
                ),
            ));
        }
        if let Some(real_io) = self.get("allow_real_io")
            && !seeded
        {
            errors.push(Error::new_spanned(
                &real_io.name,
                format!(
                    "`allow_real_io` only changes seeded runs (real sockets are always allowed \
                     otherwise): remove it, or {add_seed}"
                ),
            ));
        }
        if let Some(grace) = self.get("stall_grace")
            && self.get("stall_watchdog").is_none()
        {
            errors.push(Error::new_spanned(
                &grace.name,
                "`stall_grace` aborts tasks the stall watchdog reported, and the watchdog is \
                 off: add `stall_watchdog = \"5s\"` (or remove `stall_grace`)",
            ));
        }
        let shutdown: Vec<&Given> = [
            "shutdown_on_signal",
            "shutdown_on_signals",
            "shutdown_on_ctrl_c",
            "shutdown_signals",
        ]
        .iter()
        .filter_map(|name| self.get(name))
        .collect();
        if let [first, second, ..] = shutdown[..] {
            errors.push(Error::new_spanned(
                &second.name,
                format!(
                    "`{}` and `{}` both choose the shutdown signals: keep one \
                     (`shutdown_on_signal = true` is SIGINT and SIGTERM, \
                     `shutdown_on_ctrl_c = true` SIGINT alone, \
                     `shutdown_signals = [..]` exactly the list)",
                    first.known.name, second.known.name
                ),
            ));
        }
    }

    /// `::treeloop::Builder::new()` followed by one call per option (except `seeds`, which
    /// is not a `Builder` option). With `seeds` and no `strategy`, the strategy is `Random`,
    /// as `treeloop::test::check` uses.
    pub(crate) fn builder(&self) -> TokenStream {
        let mut calls = TokenStream::new();
        for given in &self.given {
            if given.known.name == "seeds" {
                continue;
            }
            let method = syn::Ident::new(given.known.method, given.name.span());
            let value = given.value.to_tokens();
            calls.extend(quote!(.#method(#value)));
        }
        if self.seeds().is_some() && self.get("strategy").is_none() {
            calls.extend(quote!(.strategy(::treeloop::Strategy::Random)));
        }
        quote!(::treeloop::Builder::new() #calls)
    }
}

/// Parses one `key = value` (or bare `key`) against [`KNOWN`].
fn parse_one(which: Macro, meta: &Meta) -> Result<Given, Error> {
    let name = meta.path();
    let Some(ident) = name.get_ident() else {
        return Err(unknown(which, name));
    };
    let key = ident.to_string();
    let Some(known) = KNOWN.iter().find(|k| k.name == key) else {
        return Err(unknown(which, name));
    };
    match (known.accepted, which) {
        (Accepted::MainOnly, Macro::Test) => {
            return Err(Error::new_spanned(
                name,
                format!(
                    "`{key}` installs a signal handler for the whole process, and a test binary \
                     runs many tests at once: use it in `#[treeloop::main]`; a test can stop its \
                     runtime with `treeloop::shutdown()` instead"
                ),
            ));
        }
        (Accepted::TestOnly, Macro::Main) => {
            return Err(Error::new_spanned(
                name,
                format!(
                    "`{key}` runs a test body once per seed, and a program runs once: use \
                     `seed = S` for one seeded run of `main`, or `#[treeloop::test({key} = N)]`"
                ),
            ));
        }
        _ => {}
    }
    let value = match meta {
        Meta::Path(_) if known.kind == Kind::Bool => Value::Bool(true),
        Meta::Path(_) => {
            return Err(Error::new_spanned(
                name,
                format!("`{key}` needs a value: `{key} = {}`", known.kind.example()),
            ));
        }
        Meta::List(list) => {
            return Err(Error::new_spanned(
                list,
                format!(
                    "write options as `name = value`: `{key} = {}`",
                    known.kind.example()
                ),
            ));
        }
        Meta::NameValue(pair) => parse_value(known.name, known.kind, &pair.value)?,
    };
    Ok(Given {
        known,
        value,
        name: name.clone(),
    })
}

/// The error for an option nobody knows: the nearest known name if one is close, and the
/// names this macro accepts.
fn unknown(which: Macro, name: &syn::Path) -> Error {
    let written = name.to_token_stream().to_string();
    let accepted: Vec<&str> = KNOWN
        .iter()
        .filter(|k| k.accepted.takes(which))
        .map(|k| k.name)
        .collect();
    let nearest = accepted
        .iter()
        .map(|k| (edit_distance(&written, k), *k))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    let hint = match nearest {
        Some((_, k)) => format!("did you mean `{k}`? "),
        None => String::new(),
    };
    Error::new_spanned(
        name,
        format!(
            "unknown option `{written}` for `{}`: {hint}the options are {}",
            which.attribute(),
            accepted.join(", ")
        ),
    )
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_within_two_edits_and_an_unrelated_name_is_not() {
        assert_eq!(edit_distance("start_pause", "start_paused"), 1);
        assert_eq!(edit_distance("seed", "seeds"), 1);
        assert_eq!(edit_distance("stall_watchdgo", "stall_watchdog"), 2);
        assert!(edit_distance("threads", "seeds") > 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn every_option_is_accepted_by_at_least_one_macro_and_named_once() {
        for (i, row) in KNOWN.iter().enumerate() {
            assert!(row.accepted.takes(Macro::Main) || row.accepted.takes(Macro::Test));
            assert!(KNOWN[i + 1..].iter().all(|other| other.name != row.name));
        }
    }
}
