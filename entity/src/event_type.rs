//! The event catalogue (PRD §3): 19 types in 4 categories, defined once and used by the
//! ingest validation, the endpoint form's checkbox groups and the docs.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventCategory {
    Project,
    Task,
    User,
    Billing,
}

impl EventCategory {
    pub const ALL: [EventCategory; 4] = [Self::Project, Self::Task, Self::User, Self::Billing];

    pub fn label(self) -> &'static str {
        match self {
            Self::Project => "Project",
            Self::Task => "Task",
            Self::User => "User",
            Self::Billing => "Billing",
        }
    }

    pub fn event_types(self) -> impl Iterator<Item = EventType> {
        EventType::ALL.into_iter().filter(move |t| t.category() == self)
    }
}

macro_rules! catalogue {
    ($($variant:ident => $name:literal, $category:ident, $description:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum EventType {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl EventType {
            pub const ALL: [EventType; catalogue!(@count $($variant)*)] = [$(Self::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            pub fn category(self) -> EventCategory {
                match self { $(Self::$variant => EventCategory::$category,)* }
            }

            /// When the host application sends it, in one sentence (the picker and
            /// `GET /api/v1/event-types`).
            pub fn description(self) -> &'static str {
                match self { $(Self::$variant => $description,)* }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)*
                    _ => Err(UnknownEventType(s.to_owned())),
                }
            }
        }
    };
    (@count $($x:ident)*) => { 0 $(+ catalogue!(@one $x))* };
    (@one $x:ident) => { 1 };
}

catalogue! {
    ProjectCreated => "project.created", Project, "A project was created.";
    ProjectUpdated => "project.updated", Project, "A project's name, status or owner changed.";
    ProjectDeleted => "project.deleted", Project, "A project was deleted; the object carries only its id.";
    ProjectArchived => "project.archived", Project, "A project was archived: read-only, kept for reference.";
    TaskCreated => "task.created", Task, "A task was added to a project.";
    TaskUpdated => "task.updated", Task, "A task's title, status, assignee or due date changed.";
    TaskCompleted => "task.completed", Task, "A task was marked as done.";
    TaskDeleted => "task.deleted", Task, "A task was deleted; the object carries only its id.";
    TaskAssigned => "task.assigned", Task, "A task was given to someone else; the object names the previous assignee.";
    TaskCommentAdded => "task.comment.added", Task, "Someone commented on a task.";
    UserInvited => "user.invited", User, "Someone was invited to the account and has not joined yet.";
    UserJoined => "user.joined", User, "An invited person accepted and joined the account.";
    UserRemoved => "user.removed", User, "Someone was removed from the account.";
    UserRoleChanged => "user.role.changed", User, "Someone's role changed; the object names the previous role.";
    SubscriptionCreated => "subscription.created", Billing, "The account started a paid plan.";
    SubscriptionUpdated => "subscription.updated", Billing, "The plan or the number of seats changed.";
    SubscriptionCancelled => "subscription.cancelled", Billing, "The subscription was cancelled; it ends with the current period.";
    PaymentSucceeded => "payment.succeeded", Billing, "A payment went through.";
    PaymentFailed => "payment.failed", Billing, "A payment was declined; the object says why.";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`; see the event catalogue for the 19 supported types")]
pub struct UnknownEventType(pub String);

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_catalogue_has_the_prds_nineteen_types_in_four_categories() {
        assert_eq!(EventType::ALL.len(), 19);
        let per_category: Vec<usize> = EventCategory::ALL.iter().map(|c| c.event_types().count()).collect();
        assert_eq!(per_category, vec![4, 6, 4, 5]);
        let names: HashSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), 19, "names are unique");
    }

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", t.as_str()));
        }
        assert!("task.exploded".parse::<EventType>().is_err());
        assert!("Task.Created".parse::<EventType>().is_err(), "names are case-sensitive");
    }
}

/// A short label for a set of subscribed types, as the endpoint list shows it:
/// "All events", "All task events", "task.completed", "6 events".
pub fn summarize(types: &[EventType]) -> String {
    let mut unique: Vec<EventType> = types.to_vec();
    unique.sort();
    unique.dedup();
    match unique.len() {
        0 => return "No events".to_owned(),
        1 => return unique[0].as_str().to_owned(),
        n if n == EventType::ALL.len() => return "All events".to_owned(),
        _ => {}
    }
    let whole_category = EventCategory::ALL.into_iter().find(|c| {
        let members: Vec<EventType> = c.event_types().collect();
        members == unique
    });
    match whole_category {
        Some(c) => format!("All {} events", c.label().to_lowercase()),
        None => format!("{} events", unique.len()),
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    #[test]
    fn summaries_name_whole_categories_and_count_the_rest() {
        assert_eq!(summarize(&[]), "No events");
        assert_eq!(summarize(&EventType::ALL), "All events");
        let tasks: Vec<EventType> = EventCategory::Task.event_types().collect();
        assert_eq!(summarize(&tasks), "All task events");
        assert_eq!(summarize(&tasks[..5]), "5 events");
        assert_eq!(summarize(&[EventType::TaskCompleted]), "task.completed");
        assert_eq!(summarize(&[EventType::TaskCompleted, EventType::TaskCompleted]), "task.completed");
    }
}
