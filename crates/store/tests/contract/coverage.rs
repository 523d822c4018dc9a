//! Every method of the `Store` trait is called by this suite: the list is read from
//! the trait itself, so a method added to it without a contract test fails here.

const TRAIT: &str = include_str!("../../src/lib.rs");

const SUITE: [&str; 15] = [
    include_str!("accounts.rs"),
    include_str!("answers.rs"),
    include_str!("audit.rs"),
    include_str!("codes.rs"),
    include_str!("email_changes.rs"),
    include_str!("factors.rs"),
    include_str!("flows.rs"),
    include_str!("harness.rs"),
    include_str!("oidc.rs"),
    include_str!("ops.rs"),
    include_str!("orgs.rs"),
    include_str!("passkeys.rs"),
    include_str!("sessions.rs"),
    include_str!("store.rs"),
    include_str!("throttle.rs"),
];

/// The names of the trait's methods, in order.
fn trait_methods() -> Vec<&'static str> {
    let start = TRAIT.find("pub trait Store").expect("the Store trait");
    let end = start + TRAIT[start..].find("\n}\n").expect("the end of the trait");
    TRAIT[start..end]
        .split("fn ")
        .skip(1)
        .map(|rest| rest.split(['(', '<']).next().unwrap_or_default().trim())
        .collect()
}

#[test]
fn every_store_method_is_called() {
    let methods = trait_methods();
    assert!(methods.len() > 60 && methods.contains(&"purge_expired"), "the trait was not read: {methods:?}");
    let missing: Vec<&str> =
        methods.into_iter().filter(|m| !SUITE.iter().any(|file| file.contains(&format!(".{m}(")))).collect();
    assert!(missing.is_empty(), "Store methods no contract test calls: {missing:?}");
}
