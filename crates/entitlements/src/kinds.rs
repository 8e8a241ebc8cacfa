//! Stripe's event types and subscription statuses, parsed once at the edge
//! so that every decision is an exhaustive `match`.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Defines a string enum with an `Other` variant for values the service
/// does not act on, parsed from and shown as Stripe's own strings.
macro_rules! stripe_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// Any other value, kept as Stripe sent it.
            Other(String),
        }

        impl $name {
            /// Every value the service acts on.
            pub const KNOWN: [$name; [$($text),*].len()] = [$($name::$variant),*];

            /// Stripe's strings for [`Self::KNOWN`].
            pub const NAMES: [&'static str; [$($text),*].len()] = [$($text),*];

            /// Reads Stripe's string.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }

            /// Stripe's string.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(other) => other,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(Self::parse(&String::deserialize(deserializer)?))
            }
        }
    };
}

stripe_enum! {
    /// The type of a Stripe event.
    EventKind {
        /// A Checkout Session was paid (or set up), or awaits a delayed
        /// payment.
        CheckoutSessionCompleted = "checkout.session.completed",
        /// A Checkout Session's delayed payment succeeded.
        CheckoutSessionAsyncPaymentSucceeded = "checkout.session.async_payment_succeeded",
        /// A Checkout Session's delayed payment failed.
        CheckoutSessionAsyncPaymentFailed = "checkout.session.async_payment_failed",
        /// A subscription was created; the payload is its full state.
        SubscriptionCreated = "customer.subscription.created",
        /// A subscription changed; the payload is its full state.
        SubscriptionUpdated = "customer.subscription.updated",
        /// A subscription ended; the payload is its full state.
        SubscriptionDeleted = "customer.subscription.deleted",
        /// A subscription was paused; the payload is its full state.
        SubscriptionPaused = "customer.subscription.paused",
        /// A subscription was resumed; the payload is its full state.
        SubscriptionResumed = "customer.subscription.resumed",
        /// An invoice was paid: dunning ends.
        InvoicePaid = "invoice.paid",
        /// An invoice's payment failed: dunning starts.
        InvoicePaymentFailed = "invoice.payment_failed",
        /// A charge was refunded.
        ChargeRefunded = "charge.refunded",
        /// A charge was disputed.
        ChargeDisputeCreated = "charge.dispute.created",
        /// A dispute ended (won, lost, or an inquiry closed).
        ChargeDisputeClosed = "charge.dispute.closed",
    }
}

impl EventKind {
    /// Whether the event carries a subscription's full state.
    pub fn carries_subscription(&self) -> bool {
        matches!(
            self,
            EventKind::SubscriptionCreated
                | EventKind::SubscriptionUpdated
                | EventKind::SubscriptionDeleted
                | EventKind::SubscriptionPaused
                | EventKind::SubscriptionResumed
        )
    }
}

stripe_enum! {
    /// A subscription's status.
    SubscriptionStatus {
        /// Paid and current.
        Active = "active",
        /// In a free trial.
        Trialing = "trialing",
        /// The latest invoice is unpaid; Stripe retries.
        PastDue = "past_due",
        /// The first payment has not succeeded yet.
        Incomplete = "incomplete",
        /// The first payment never succeeded; final.
        IncompleteExpired = "incomplete_expired",
        /// Retries are exhausted; the subscription stays open unpaid.
        Unpaid = "unpaid",
        /// Ended; final.
        Canceled = "canceled",
        /// Paused at the end of a trial without a payment method.
        Paused = "paused",
    }
}

impl SubscriptionStatus {
    /// Whether no later state can follow this one.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_others_are_kept() {
        for kind in EventKind::KNOWN {
            assert_eq!(EventKind::parse(kind.as_str()), kind);
        }
        for status in SubscriptionStatus::KNOWN {
            assert_eq!(SubscriptionStatus::parse(status.as_str()), status);
        }
        assert_eq!(
            EventKind::parse("customer.created"),
            EventKind::Other("customer.created".into())
        );
        assert_eq!(SubscriptionStatus::parse("weird").as_str(), "weird");
        assert!(SubscriptionStatus::Canceled.is_terminal());
        assert!(!SubscriptionStatus::PastDue.is_terminal());
    }
}
