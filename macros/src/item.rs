//! The annotated function: checked, then rewritten into a sync fn that runs it.
//!
//! # Ground rules
//!
//! - The user's `async fn` is kept as it was written, moved *inside* the generated sync fn
//!   of the same name: its return type, `?`, `return` and lints work exactly as in any
//!   `async fn`, and no inference is needed for what an async block returns. The outer fn
//!   takes the user's attributes (`#[should_panic]`, `#[ignore]`, docs, `#[allow]`) and
//!   visibility.
//! - The outer fn builds the runtime from the options and either `block_on`s the inner fn
//!   (`main`, and tests without `seeds`) or hands it to `::treeloop::test::check_with`,
//!   which calls it once per seed (an `async fn` item is `Fn`, so it can).
//! - On any error the output is the errors plus an empty stub of the fn, so that rustc
//!   reports only them (no "`main` function not found", no "`main` cannot be async").

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Error, ItemFn, Signature};

use crate::errors::Errors;
use crate::options::{Macro, Options};

/// Expands `#[treeloop::main(args)]` or `#[treeloop::test(args)]` on `item`.
pub(crate) fn expand(which: Macro, args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = Error::new_spanned(
                &item,
                format!(
                    "`{}` goes on an `async fn`, as in `{}`",
                    which.attribute(),
                    example(which, "name")
                ),
            );
            return error.to_compile_error();
        }
    };
    let mut errors = Errors::default();
    let options = Options::parse(which, args, &mut errors);
    check_signature(which, &function.sig, &mut errors);
    if which == Macro::Test {
        check_no_test_attribute(&function.attrs, &function.sig, &mut errors);
    }
    match errors.finish() {
        Ok(()) => generate(which, &options, function),
        Err(error) => with_stub(error, &function),
    }
}

/// `async fn main()` or `async fn name()`, for messages.
fn example(which: Macro, name: &str) -> String {
    match which {
        Macro::Main => "#[treeloop::main] async fn main() { .. }".to_owned(),
        Macro::Test => format!("#[treeloop::test] async fn {name}() {{ .. }}"),
    }
}

/// The fn must be `async`, take no arguments, and have no generics.
fn check_signature(which: Macro, sig: &Signature, errors: &mut Errors) {
    let name = sig.ident.to_string();
    if sig.asyncness.is_none() {
        let message = match which {
            Macro::Main => format!(
                "`#[treeloop::main]` runs an async fn on a treeloop runtime, and `{name}` is not \
                 async: add `async` (`async fn {name}()`)"
            ),
            Macro::Test => format!(
                "`#[treeloop::test]` runs an async test body, and `{name}` is not async: add \
                 `async` (`async fn {name}()`), or use `#[test]` for a sync test"
            ),
        };
        errors.push(Error::new_spanned(sig.fn_token, message));
    }
    if let Some(unsafety) = sig.unsafety {
        errors.push(Error::new_spanned(
            unsafety,
            format!(
                "`{}` cannot run an `unsafe fn`: remove `unsafe` (and put what needs it in an \
                 `unsafe` block)",
                which.attribute()
            ),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(Error::new_spanned(
            &sig.generics,
            format!(
                "`{}` cannot run a generic fn: nothing would choose its type parameters; remove \
                 them",
                which.attribute()
            ),
        ));
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        let message = match which {
            Macro::Main => format!(
                "`#[treeloop::main]` makes a `fn {name}()` without arguments: remove them (a \
                 program reads its command line with `std::env::args()`)"
            ),
            Macro::Test => "a test takes no arguments: remove them and build its inputs in the \
                            body (`seeds = N` runs it under N interleavings)"
                .to_owned(),
        };
        errors.push(Error::new_spanned(&sig.inputs, message));
    }
}

/// A `#[test]` next to `#[treeloop::test]` would declare the test twice.
fn check_no_test_attribute(attrs: &[Attribute], sig: &Signature, errors: &mut Errors) {
    for attr in attrs {
        if attr.path().is_ident("test") {
            errors.push(Error::new_spanned(
                attr,
                format!(
                    "remove this `#[test]`: `#[treeloop::test]` already makes `{}` a test",
                    sig.ident
                ),
            ));
        }
    }
}

/// The errors, and an empty sync fn of the same name in place of the user's.
fn with_stub(error: Error, function: &ItemFn) -> TokenStream {
    let error = error.to_compile_error();
    let (vis, name) = (&function.vis, &function.sig.ident);
    quote! {
        #error
        #[allow(dead_code)]
        #vis fn #name() {}
    }
}

/// The sync fn that runs the user's async fn (see the module docs).
fn generate(which: Macro, options: &Options, function: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let name = &sig.ident;
    let output = &sig.output;
    let builder = options.builder();
    let attribute = which.attribute();
    let build = quote! {
        #builder.build().unwrap_or_else(|err| {
            ::core::panic!("{} could not build its runtime: {}", #attribute, err)
        })
    };
    match (which, options.seeds()) {
        (Macro::Main, _) => quote! {
            #(#attrs)*
            #vis fn #name() #output {
                #sig #block
                #build.block_on(#name())
            }
        },
        (Macro::Test, None) => quote! {
            #[::core::prelude::v1::test]
            #(#attrs)*
            #vis fn #name() #output {
                #sig #block
                #build.block_on(#name())
            }
        },
        (Macro::Test, Some(seeds)) => quote! {
            #[::core::prelude::v1::test]
            #(#attrs)*
            #vis fn #name() {
                #sig #block
                ::treeloop::test::check_with(#builder, #seeds, #name)
            }
        },
    }
}
