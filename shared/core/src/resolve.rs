//! Identity resolution: identities that carry the same strong identifier are one customer.
//!
//! For each message the prioritizer handles, [`Resolver::resolve`] notes the identifiers its
//! identity carries ([`CustomerIdentity::identifiers`]: an e-mail address, a phone number, a
//! WhatsApp user id, a handle) in the [`IdentityIndex`], and links the identity's customer with
//! the customer of every other identity seen with a strong one ([`IdentifierKind::links`](crate::model::IdentifierKind::links)),
//! recording the evidence ([`LinkEvidence`]: which identifier, seen where and when). The
//! customer first seen survives. It never links:
//!
//! * on a handle or a display name (weak evidence);
//! * two customers an agent separated ([`Customer::declines`]);
//! * on an identifier carried by more than [`MAX_CARRIERS`] identities (a shared mailbox or a
//!   company switchboard number says nothing about who wrote);
//! * when automatic linking is off ([`Resolver::automatic`]); the identifiers are still noted,
//!   so a lookup finds the customer.
//!
//! [`CustomerIdentity::identifiers`]: crate::model::CustomerIdentity::identifiers

use std::sync::Arc;

use crate::clock::Clock;
use crate::model::{Customer, Identifier, LinkEvidence, Message, Sighting};
use crate::ports::{BackendError, CustomerDirectory, IdentityIndex, IdentityLookup, LinkError};

/// An identifier carried by more identities than this links none of them.
pub const MAX_CARRIERS: usize = 10;

/// Links identities on strong identifiers, over the index and the directory.
#[derive(Clone)]
pub struct Resolver {
    index: Arc<dyn IdentityIndex>,
    customers: Arc<dyn CustomerDirectory>,
    clock: Arc<dyn Clock>,
    automatic: bool,
}

impl Resolver {
    /// A resolver over `index` and `customers`, linking automatically.
    pub fn new(
        index: Arc<dyn IdentityIndex>,
        customers: Arc<dyn CustomerDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            index,
            customers,
            clock,
            automatic: true,
        }
    }

    /// Whether identities are linked automatically (default true). Off, identifiers are still
    /// noted for lookups, and only agents link.
    pub fn automatic(mut self, on: bool) -> Self {
        self.automatic = on;
        self
    }

    /// Notes the identifiers of `message`'s identity and links its customer with the others
    /// seen with a strong one. Answers the links made. Idempotent: a message handled again
    /// links nothing new.
    pub async fn resolve(&self, message: &Message) -> Result<Vec<LinkEvidence>, BackendError> {
        let identity = &message.customer;
        let mut made = Vec::new();
        for identifier in &identity.identifiers {
            let sighting = Sighting {
                identity: identity.customer_id.clone(),
                channel: identity.channel,
                at: message.sent_at,
            };
            let carriers = self
                .index
                .observe(identifier, &sighting, MAX_CARRIERS + 1)
                .await?;
            if !self.automatic || !identifier.kind.links() || carriers.len() > MAX_CARRIERS {
                continue;
            }
            for matched in carriers {
                if matched.identity == identity.customer_id {
                    continue;
                }
                let (Some(theirs), Some(mine)) = (
                    self.customers.customer(&matched.identity).await?,
                    self.customers.customer(&identity.customer_id).await?,
                ) else {
                    continue;
                };
                if theirs.id == mine.id || mine.declines(&theirs, identifier) {
                    continue;
                }
                let evidence = LinkEvidence {
                    identifier: identifier.clone(),
                    seen: sighting.clone(),
                    matched,
                };
                // The customer seen first survives.
                match self
                    .customers
                    .link(
                        &theirs.id,
                        &mine.id,
                        self.clock.now(),
                        Some(evidence.clone()),
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::info!(
                            customer = %theirs.id,
                            linked = %mine.id,
                            identifier = identifier.kind.as_str(),
                            "identities linked automatically"
                        );
                        made.push(evidence);
                    }
                    // Gone in between (purged): nothing to link.
                    Err(LinkError::UnknownCustomer(_)) => {}
                    Err(LinkError::Backend(e)) => return Err(e),
                    Err(LinkError::SameCustomer | LinkError::NotLinked { .. }) => {}
                }
            }
        }
        Ok(made)
    }
}

/// The customers carrying `identifier` (the surviving ones, each once, in the order their
/// identities were first seen with it), at most 100.
pub async fn customers_with(
    index: &dyn IdentityLookup,
    customers: &dyn CustomerDirectory,
    identifier: &Identifier,
) -> Result<Vec<Customer>, BackendError> {
    let mut found: Vec<Customer> = Vec::new();
    for sighting in index.carriers(identifier, 100).await? {
        if let Some(customer) = customers.customer(&sighting.identity).await?
            && !found.iter().any(|c| c.id == customer.id)
        {
            found.push(customer);
        }
    }
    Ok(found)
}
