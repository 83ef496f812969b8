//! What a customer submits for an endpoint, and the rules it must meet (SPEC §7). The
//! same code validates in the browser (wasm) and on the server, which is the authority.

use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError, ValidationErrors};

use crate::{endpoint_url::EndpointUrl, EventType};

pub const MAX_DESCRIPTION: usize = 500;
pub const DEFAULT_RATE_LIMIT: i32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointInput {
    #[validate(custom(function = "check_url"))]
    pub url: String,
    #[serde(default)]
    #[validate(length(max = 500, message = "Keep the description under 500 characters."))]
    #[validate(custom(function = "check_description"))]
    pub description: String,
    #[validate(length(min = 1, message = "Select at least one event."))]
    pub event_types: Vec<EventType>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_rate_limit")]
    #[validate(range(min = 1, max = 100, message = "The rate limit must be between 1 and 100 events per second."))]
    pub rate_limit: i32,
}

fn default_true() -> bool {
    true
}

fn default_rate_limit() -> i32 {
    DEFAULT_RATE_LIMIT
}

impl Default for EndpointInput {
    fn default() -> Self {
        EndpointInput {
            url: String::new(),
            description: String::new(),
            event_types: Vec::new(),
            enabled: true,
            rate_limit: DEFAULT_RATE_LIMIT,
        }
    }
}

fn check_url(url: &str) -> Result<(), ValidationError> {
    EndpointUrl::parse(url).map(|_| ()).map_err(|err| {
        let mut e = ValidationError::new("url");
        e.message = Some(err.to_string().into());
        e
    })
}

/// Control characters have no place in a label, and PostgreSQL's `text` cannot hold NUL:
/// refused here with a message rather than failing at the database (found by schemathesis).
fn check_description(description: &str) -> Result<(), ValidationError> {
    if description.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        let mut e = ValidationError::new("description");
        e.message = Some("The description can't contain control characters; use plain text.".into());
        return Err(e);
    }
    Ok(())
}

/// One broken rule, named by the form field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl EndpointInput {
    /// All broken rules, in form order; empty when the input is acceptable.
    pub fn errors(&self) -> Vec<FieldError> {
        match self.validate() {
            Ok(()) => Vec::new(),
            Err(errors) => field_errors(&errors),
        }
    }

    /// The canonical URL (trimmed, normalised host) once the input is valid.
    pub fn normalized_url(&self) -> Option<String> {
        EndpointUrl::parse(&self.url).ok().map(|u| u.as_str().to_owned())
    }
}

fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    const ORDER: [&str; 4] = ["url", "description", "event_types", "rate_limit"];
    let fields = errors.field_errors();
    ORDER
        .iter()
        .filter_map(|name| {
            let first = fields.get(*name)?.first()?;
            let message = first.message.as_ref().map(|m| m.to_string()).unwrap_or_else(|| format!("Check {name}."));
            Some(FieldError { field: (*name).to_owned(), message })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EndpointInput {
        EndpointInput {
            url: "https://hooks.example.com/in".into(),
            event_types: vec![EventType::TaskCompleted],
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_input_has_no_errors() {
        assert_eq!(valid().errors(), vec![]);
    }

    #[test]
    fn control_characters_in_the_description_are_refused_but_line_breaks_are_not() {
        let with = |description: &str| EndpointInput { description: description.into(), ..valid() }.errors();
        let errors = with("orders\0feed");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "description");
        assert!(errors[0].message.contains("control characters"), "{}", errors[0].message);
        assert!(!with("bell\u{7}").is_empty());
        assert_eq!(with("Orders\nfor the EU team\tü ✓"), vec![]);
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let input = EndpointInput {
            url: "http://hooks.example.com".into(),
            description: "x".repeat(501),
            event_types: vec![],
            rate_limit: 101,
            ..Default::default()
        };
        let fields: Vec<String> = input.errors().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["url", "description", "event_types", "rate_limit"]);
        let url_error = &input.errors()[0].message;
        assert!(url_error.contains("https://"), "{url_error}");
    }

    #[test]
    fn no_events_selected_has_its_own_message() {
        let input = EndpointInput { event_types: vec![], ..valid() };
        assert_eq!(input.errors()[0].message, "Select at least one event.");
    }

    #[test]
    fn rate_limit_bounds_are_inclusive() {
        for (limit, ok) in [(0, false), (1, true), (100, true), (101, false)] {
            let input = EndpointInput { rate_limit: limit, ..valid() };
            assert_eq!(input.errors().is_empty(), ok, "rate limit {limit}");
        }
    }
}

/// A partial update (REST `PATCH`): absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub enabled: Option<bool>,
    pub rate_limit: Option<i32>,
}

impl EndpointPatch {
    pub fn apply(self, current: EndpointInput) -> EndpointInput {
        EndpointInput {
            url: self.url.unwrap_or(current.url),
            description: self.description.unwrap_or(current.description),
            event_types: self.event_types.unwrap_or(current.event_types),
            enabled: self.enabled.unwrap_or(current.enabled),
            rate_limit: self.rate_limit.unwrap_or(current.rate_limit),
        }
    }
}
