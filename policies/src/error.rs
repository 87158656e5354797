//! The crate's one error type.

/// What went wrong in a policy computation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy file has a value that is not allowed; `field` is its dotted path.
    #[error("policy field `{field}`: {problem}")]
    PolicyField { field: String, problem: String },
    /// The policy file is not valid TOML or has an unknown or missing field.
    #[error("policy file: {0}")]
    PolicySyntax(String),
    /// A holder attribute is out of range (name, birth date, sex, address).
    #[error("{field}: {problem}")]
    Attribute {
        field: &'static str,
        problem: String,
    },
    /// A date computation left the representable range.
    #[error("date out of range: {0}")]
    Date(String),
    /// A DER structure could not be encoded.
    #[error("DER encoding of {what}: {source}")]
    Der {
        what: &'static str,
        source: der::Error,
    },
    /// A to-be-signed certificate broke its profile; `rule` names the rule.
    #[error("lint {rule}: {detail}")]
    Lint { rule: &'static str, detail: String },
    /// A CRL partition's name (a path, a distribution point's CN) does not parse.
    #[error("CRL partition {name:?}: {problem}")]
    Partition { name: String, problem: String },
    /// A certificate or key could not be parsed.
    #[error("cannot parse {what}: {detail}")]
    Parse { what: &'static str, detail: String },
}

impl Error {
    pub(crate) fn der(what: &'static str) -> impl FnOnce(der::Error) -> Error {
        move |source| Error::Der { what, source }
    }
}
