//! Realistic sample objects for test sends, one per event type, shaped like what the host
//! application sends for real.

use crate::EventType;
use serde_json::{json, Value};

pub fn sample_object(event_type: EventType) -> Value {
    use EventType::*;
    let project = json!({
        "id": "prj_8f3k2m", "name": "Website relaunch", "status": "active",
        "owner_id": "usr_42", "created_at": "2024-01-10T09:00:00Z"
    });
    let task = json!({
        "id": "tsk_19ad7c", "project_id": "prj_8f3k2m", "title": "Write launch announcement",
        "status": "open", "assignee_id": "usr_42", "due_date": "2024-02-01",
        "created_at": "2024-01-12T14:05:00Z"
    });
    let user = json!({
        "id": "usr_77", "email": "jamie@example.com", "name": "Jamie Rivera", "role": "member"
    });
    let subscription = json!({
        "id": "sub_5521", "plan": "team", "status": "active", "seats": 12,
        "current_period_end": "2024-02-15T00:00:00Z"
    });
    let payment = json!({
        "id": "pay_90b1", "subscription_id": "sub_5521", "amount": 14400, "currency": "usd",
        "status": "succeeded"
    });
    match event_type {
        ProjectCreated | ProjectUpdated => project,
        ProjectDeleted => json!({ "id": "prj_8f3k2m", "deleted": true }),
        ProjectArchived => with(project, json!({ "status": "archived", "archived_at": "2024-01-15T10:30:00Z" })),
        TaskCreated | TaskUpdated => task,
        TaskCompleted => with(task, json!({ "status": "completed", "completed_at": "2024-01-15T10:30:00Z" })),
        TaskDeleted => json!({ "id": "tsk_19ad7c", "deleted": true }),
        TaskAssigned => with(task, json!({ "assignee_id": "usr_77", "previous_assignee_id": "usr_42" })),
        TaskCommentAdded => json!({
            "id": "cmt_301", "task_id": "tsk_19ad7c", "author_id": "usr_42",
            "body": "Draft is ready for review.", "created_at": "2024-01-15T10:30:00Z"
        }),
        UserInvited => with(user, json!({ "invited_by": "usr_42", "status": "invited" })),
        UserJoined => with(user, json!({ "status": "active", "joined_at": "2024-01-15T10:30:00Z" })),
        UserRemoved => json!({ "id": "usr_77", "removed_by": "usr_42" }),
        UserRoleChanged => with(user, json!({ "role": "admin", "previous_role": "member" })),
        SubscriptionCreated | SubscriptionUpdated => subscription,
        SubscriptionCancelled => with(subscription, json!({ "status": "cancelled", "cancel_at_period_end": true })),
        PaymentSucceeded => payment,
        PaymentFailed => with(payment, json!({ "status": "failed", "failure_reason": "card_declined" })),
    }
}

/// A whole payload as a receiver gets it (SPEC §4), around the type's sample object: what
/// the event picker and `GET /api/v1/event-types` show.
pub fn sample_payload(event_type: EventType) -> Value {
    json!({
        "id": "evt_2QbX9tHk7mN4pR8sV1wY3z",
        "type": event_type.as_str(),
        "created": "2024-01-15T10:30:00Z",
        "data": { "object": sample_object(event_type) },
        "account_id": "acc_2QbX9tGf5kL2mN8pQ4rS6t",
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    if let (Some(base), Value::Object(changes)) = (base.as_object_mut(), changes) {
        base.extend(changes);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_an_object_with_an_id() {
        for t in EventType::ALL {
            let object = sample_object(t);
            assert!(object["id"].is_string(), "{t} sample lacks an id");
        }
        assert_eq!(sample_object(EventType::TaskCompleted)["status"], "completed");
        assert_eq!(sample_object(EventType::PaymentFailed)["failure_reason"], "card_declined");
    }

    #[test]
    fn a_sample_payload_wraps_the_sample_object_like_a_real_delivery() {
        let payload = sample_payload(EventType::TaskAssigned);
        assert_eq!(payload["type"], "task.assigned");
        assert_eq!(payload["data"]["object"], sample_object(EventType::TaskAssigned));
        assert!(payload["id"].as_str().unwrap().starts_with("evt_"));
    }
}
