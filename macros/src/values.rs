//! Option values: checked at compile time and turned into the tokens of a `Builder` argument.
//!
//! # Ground rules
//!
//! - A value is accepted only in the syntax its [`Kind`] names, and checked as far as a
//!   literal allows: a duration has a known unit and fits a `Duration`, `seeds` is at least
//!   1, `Pct`'s depth at least 1, a signal is one the runtime can watch.
//! - Durations have one spelling per value: an integer and one unit (`"1500ms"`, not
//!   `"1.5s"` or `"1s500ms"`), the units of `us`, `ms`, `s`, `m`, `h`.
//! - Tokens name only `::treeloop::` and `::core` paths.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, Expr, ExprLit, Lit};

use crate::errors::Errors;

/// The kind of value an option takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `true` or `false`; a bare `name` means `true`.
    Bool,
    /// A `u64` integer literal (`seed`).
    Seed,
    /// A positive integer literal (`seeds`).
    Count,
    /// A string literal: an integer and a unit, `"250ms"`.
    Duration,
    /// `Fifo`, `Random` or `Pct(depth)`.
    Strategy,
    /// A list of signal names: `[SIGINT, SIGTERM]`.
    Signals,
}

impl Kind {
    /// An example value, for messages.
    pub(crate) fn example(self) -> &'static str {
        match self {
            Kind::Bool => "true",
            Kind::Seed => "7",
            Kind::Count => "16",
            Kind::Duration => "\"5s\"",
            Kind::Strategy => "Random",
            Kind::Signals => "[SIGINT, SIGTERM]",
        }
    }
}

/// The signals `shutdown_signals` accepts: the name users write (as `kill -l` and `man 7
/// signal` spell it), and the `SignalKind` constructor it becomes. The signals the runtime
/// cannot watch (SIGKILL, SIGSTOP, SIGSEGV, ...) are not here, so naming one is a compile
/// error rather than a `build` failure.
const SIGNALS: &[(&str, &str)] = &[
    ("SIGINT", "interrupt"),
    ("SIGTERM", "terminate"),
    ("SIGHUP", "hangup"),
    ("SIGQUIT", "quit"),
    ("SIGUSR1", "user_defined1"),
    ("SIGUSR2", "user_defined2"),
    ("SIGWINCH", "window_change"),
    ("SIGCHLD", "child"),
    ("SIGALRM", "alarm"),
];

/// A checked value, ready to become tokens.
pub(crate) enum Value {
    /// A bool option's value.
    Bool(bool),
    /// `seed` or `seeds`.
    Int(u64),
    /// A duration option's value.
    Duration(Duration),
    /// `::treeloop::Strategy::...`, already built.
    Strategy(TokenStream),
    /// The `SignalKind` constructors of `shutdown_signals`.
    Signals(Vec<syn::Ident>),
}

impl Value {
    /// The value as an argument of its `Builder` method.
    pub(crate) fn to_tokens(&self) -> TokenStream {
        match self {
            Value::Bool(b) => quote!(#b),
            Value::Int(n) => quote!(#n),
            Value::Duration(d) => {
                let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
                quote!(::core::time::Duration::new(#secs, #nanos))
            }
            Value::Strategy(tokens) => tokens.clone(),
            Value::Signals(kinds) => quote! {
                [#(::treeloop::signal::SignalKind::#kinds()),*]
            },
        }
    }
}

/// Checks `expr`, the value of option `key`, against the kind the option takes.
pub(crate) fn parse_value(key: &str, kind: Kind, expr: &Expr) -> Result<Value, Error> {
    let wrong = |what: &str| {
        Error::new_spanned(
            expr,
            format!("`{key}` takes {what}, as in `{key} = {}`", kind.example()),
        )
    };
    match kind {
        Kind::Bool => match literal(expr) {
            Some(Lit::Bool(b)) => Ok(Value::Bool(b.value)),
            _ => Err(wrong("`true` or `false`")),
        },
        Kind::Seed | Kind::Count => {
            let Some(Lit::Int(int)) = literal(expr) else {
                return Err(wrong("an integer literal"));
            };
            let n: u64 = int
                .base10_parse()
                .map_err(|_| wrong("an integer literal that fits a `u64`"))?;
            if kind == Kind::Count && n == 0 {
                return Err(Error::new_spanned(
                    expr,
                    format!(
                        "`{key} = 0` would run the test body zero times: give at least 1, as in \
                         `{key} = 16`"
                    ),
                ));
            }
            Ok(Value::Int(n))
        }
        Kind::Duration => {
            let Some(Lit::Str(text)) = literal(expr) else {
                return Err(wrong(
                    "a duration string: an integer and a unit (us, ms, s, m, h)",
                ));
            };
            parse_duration(&text.value())
                .map(Value::Duration)
                .map_err(|why| Error::new_spanned(expr, format!("`{key}`: {why}")))
        }
        Kind::Strategy => parse_strategy(expr).map(Value::Strategy),
        Kind::Signals => parse_signals(expr).map(Value::Signals),
    }
}

/// The literal `expr` is, if it is one.
fn literal(expr: &Expr) -> Option<Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit.clone()),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"100us"`: an integer, then a unit. One unit, no
/// fractions: `"1500ms"` rather than `"1.5s"`, so there is one way to write each value.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let fix = "write an integer and a unit (us, ms, s, m, h), as in \"250ms\" or \"5s\"";
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a duration: {fix}"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large: {fix}"))?;
    let duration = match unit {
        "us" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "" => return Err(format!("{text:?} has no unit: {fix}")),
        _ => return Err(format!("{text:?} has an unknown unit `{unit}`: {fix}")),
    };
    duration.ok_or_else(|| format!("{text:?} is too large: {fix}"))
}

/// `Fifo`, `Random`, `Pct(depth)` (each optionally as `Strategy::...`), as the tokens of a
/// `::treeloop::Strategy`.
fn parse_strategy(expr: &Expr) -> Result<TokenStream, Error> {
    let fix = "use `Fifo`, `Random` or `Pct(depth)` (e.g. `Pct(3)`)";
    let variant = |path: &syn::Path| -> Option<syn::Ident> {
        let segments: Vec<_> = path.segments.iter().collect();
        match segments[..] {
            [last] => Some(last.ident.clone()),
            [first, last] if first.ident == "Strategy" => Some(last.ident.clone()),
            _ => None,
        }
    };
    match expr {
        Expr::Path(path) => match variant(&path.path) {
            Some(v) if v == "Fifo" || v == "Random" => {
                Ok(quote_spanned!(v.span()=> ::treeloop::Strategy::#v))
            }
            Some(v) if v == "Pct" => Err(Error::new_spanned(
                expr,
                "`Pct` needs its bug depth: `Pct(3)` (1 is plain random priorities)",
            )),
            _ => Err(Error::new_spanned(
                expr,
                format!("unknown strategy `{}`: {fix}", path.to_token_stream()),
            )),
        },
        Expr::Call(call) => {
            let is_pct = matches!(&*call.func, Expr::Path(p) if variant(&p.path).is_some_and(|v| v == "Pct"));
            if !is_pct {
                return Err(Error::new_spanned(
                    expr,
                    format!("unknown strategy `{}`: {fix}", call.func.to_token_stream()),
                ));
            }
            let depth = match (call.args.len(), call.args.first().and_then(literal)) {
                (1, Some(Lit::Int(int))) => int.base10_parse::<u32>().ok(),
                _ => None,
            };
            match depth {
                Some(0) => Err(Error::new_spanned(
                    &call.args,
                    "`Pct(0)`: the bug depth is at least 1 (1 is plain random priorities)",
                )),
                Some(depth) => Ok(quote!(::treeloop::Strategy::Pct { depth: #depth })),
                None => Err(Error::new_spanned(
                    &call.args,
                    "`Pct` takes one integer literal, its bug depth: `Pct(3)`",
                )),
            }
        }
        _ => Err(Error::new_spanned(expr, format!("not a strategy: {fix}"))),
    }
}

/// `[SIGINT, SIGTERM, ...]` as `SignalKind` constructor names.
fn parse_signals(expr: &Expr) -> Result<Vec<syn::Ident>, Error> {
    let names: Vec<&str> = SIGNALS.iter().map(|(name, _)| *name).collect();
    let fix = format!("name signals from {}", names.join(", "));
    let Expr::Array(array) = expr else {
        return Err(Error::new_spanned(
            expr,
            format!("`shutdown_signals` takes a list, as in `[SIGINT, SIGTERM]`: {fix}"),
        ));
    };
    if array.elems.is_empty() {
        return Err(Error::new_spanned(
            expr,
            "an empty `shutdown_signals` list turns shutdown on signals off, which is the \
             default: remove the option",
        ));
    }
    let mut errors = Errors::default();
    let mut kinds = Vec::new();
    for elem in &array.elems {
        let name = match elem {
            Expr::Path(path) => path.path.get_ident().map(ToString::to_string),
            _ => None,
        };
        match SIGNALS
            .iter()
            .find(|(signal, _)| Some(*signal) == name.as_deref())
        {
            Some((_, constructor)) => kinds.push(syn::Ident::new(constructor, elem.span())),
            None => errors.push(Error::new_spanned(
                elem,
                format!(
                    "`{}` is not a signal the runtime can watch: {fix}",
                    elem.to_token_stream()
                ),
            )),
        }
    }
    errors.finish()?;
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_an_integer_and_one_unit() {
        let ok = [
            ("100us", Duration::from_micros(100)),
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        let refused = [
            ("5000", "has no unit"),
            ("5d", "unknown unit `d`"),
            ("1.5s", "is not a duration"),
            ("10 ms", "is not a duration"),
            ("ms", "is not a duration"),
            ("-1s", "is not a duration"),
            ("99999999999999999999s", "is too large"),
            ("18446744073709551615h", "is too large"),
        ];
        for (text, why) in refused {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
