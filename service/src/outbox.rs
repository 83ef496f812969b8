//! The narrow port through which the dashboard has email sent: queued as a background job
//! by the server crate, which alone knows apalis and SMTP. Beside `Engine`, not in it: email
//! about the team has nothing to do with delivering webhooks.

use crate::ServiceError;

#[async_trait::async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Queues the email carrying an invitation's link. The token is in the link only: the
    /// invitations table keeps its hash.
    async fn invitation(&self, invitation_id: &str, token: &str) -> Result<(), ServiceError>;
}
