//! How a validated type states its rules in the OpenAPI document, written once beside the type
//! that enforces them.
//!
//! A request field (a `String` as the caller sent it, parsed by the handler) names the type it
//! will be parsed into with `#[schema(format = "<marker>")]`; `api::openapi::finish` replaces
//! every such marker with the type's [`TextRules`] (length limits and pattern), so no pattern
//! or limit is pasted field by field. A test checks that no marker survives into the document.

/// What the document says about one kind of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRules {
    /// The `format` a field carries to ask for these rules.
    pub marker: &'static str,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// A regular expression (ECMA 262) the whole value must match.
    pub pattern: Option<&'static str>,
}

/// Text with at least one character that is not white space (names); each field sets its length.
pub const NON_BLANK: TextRules = TextRules {
    marker: "non-blank",
    min_length: None,
    max_length: None,
    pattern: Some(r"\S"),
};

/// No C0 or C1 control character anywhere (and at least one character).
pub const NO_CONTROL_CHARACTERS: &str = r"^[^\u0000-\u001f\u007f-\u009f]+$";

/// Rules a request type states beyond what its derive can (one field or another, a field that
/// needs another, a value from the code's own list): `(JSON Pointer inside the type's schema,
/// value merged in there)`. Implemented beside the type; `api::openapi` applies them under the
/// type's schema name, so no rule is keyed by a hand-written name.
pub trait CrossFieldRules: utoipa::ToSchema {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)>;
}
