//! Errors as text for logs and command lines: the chain of causes, written once.

use std::error::Error;

/// The causes of `e` (its sources, outermost first), joined by `": "`; empty when it has none.
pub fn causes(e: &dyn Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// `e` and its causes: `"<e>: <cause>: <cause of the cause>"`.
pub fn chain(e: &dyn Error) -> String {
    let causes = causes(e);
    if causes.is_empty() {
        e.to_string()
    } else {
        format!("{e}: {causes}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn the_chain_reads_outermost_first() {
        let e = Outer(Inner(std::io::Error::other("disk full")));
        assert_eq!(causes(&e), "inner: disk full");
        assert_eq!(chain(&e), "outer: inner: disk full");
        let alone = std::io::Error::other("alone");
        assert_eq!(
            (causes(&alone).as_str(), chain(&alone).as_str()),
            ("", "alone")
        );
    }
}
