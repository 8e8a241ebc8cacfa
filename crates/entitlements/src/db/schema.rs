//! Table definitions shared by both backends (see `migrations/`).

diesel::table! {
    organizations (id) {
        id -> Text,
        stripe_customer_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        history_position -> BigInt,
        customer_attempt -> BigInt,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Text,
        org_id -> Nullable<Text>,
        customer_id -> Nullable<Text>,
        status -> Nullable<Text>,
        current_period_start -> Nullable<BigInt>,
        current_period_end -> Nullable<BigInt>,
        cancel_at_period_end -> Bool,
        past_due_since -> Nullable<BigInt>,
        dunning_invoice -> Nullable<Text>,
        last_paid_at -> Nullable<BigInt>,
        last_event_created -> Nullable<BigInt>,
        state_read_at -> Nullable<BigInt>,
        updated_at -> BigInt,
        dunning_invoice_created -> Nullable<BigInt>,
    }
}

diesel::table! {
    subscription_items (id) {
        id -> Text,
        subscription_id -> Text,
        price_id -> Text,
        quantity -> BigInt,
    }
}

diesel::table! {
    entitlements (org_id) {
        org_id -> Text,
        plan -> Text,
        status -> Text,
        features -> Text,
        subscription_id -> Nullable<Text>,
        current_period_end -> Nullable<BigInt>,
        cancel_at_period_end -> Bool,
        grace_until -> Nullable<BigInt>,
        valid_until -> Nullable<BigInt>,
        version -> BigInt,
        updated_at -> BigInt,
        rules -> Nullable<Text>,
        recheck_at -> Nullable<BigInt>,
        sources -> Text,
    }
}

diesel::table! {
    history_notes (org_id, position) {
        org_id -> Text,
        position -> BigInt,
        action -> Text,
        event_id -> Nullable<Text>,
        detail -> Text,
        noted_at -> BigInt,
        grant_id -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        event_type -> Text,
        created -> BigInt,
        livemode -> Bool,
        org_id -> Nullable<Text>,
        subscription_id -> Nullable<Text>,
        outcome -> Text,
        detail -> Nullable<Text>,
        payload -> Text,
        received_at -> BigInt,
        position -> Nullable<BigInt>,
        customer_id -> Nullable<Text>,
    }
}

diesel::table! {
    entitlement_changes (id) {
        id -> BigInt,
        org_id -> Text,
        version -> BigInt,
        event_id -> Nullable<Text>,
        plan -> Text,
        status -> Text,
        features -> Text,
        changed_at -> BigInt,
        position -> BigInt,
        grant_id -> Nullable<Text>,
        answer -> Nullable<Text>,
        feed_position -> Nullable<BigInt>,
    }
}

diesel::table! {
    purchases (id) {
        id -> Text,
        org_id -> Text,
        customer_id -> Nullable<Text>,
        payment_intent_id -> Nullable<Text>,
        plan -> Text,
        quantity -> BigInt,
        status -> Text,
        paid_at -> Nullable<BigInt>,
        last_event_created -> BigInt,
        updated_at -> BigInt,
        terms -> Nullable<Text>,
    }
}

diesel::table! {
    payments (payment_intent_id) {
        payment_intent_id -> Text,
        refunded -> Bool,
        disputed -> Bool,
        dispute_event_created -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        org_id -> Text,
        plan -> Nullable<Text>,
        features -> Nullable<Text>,
        quantity -> BigInt,
        expires_at -> Nullable<BigInt>,
        reason -> Nullable<Text>,
        created_at -> BigInt,
        created_by -> Text,
        revoked_at -> Nullable<BigInt>,
        revoked_by -> Nullable<Text>,
        expiry_noted -> Bool,
    }
}

diesel::table! {
    notify_endpoints (name) {
        name -> Text,
        feed_position -> BigInt,
    }
}

diesel::table! {
    notify_progress (endpoint, org_id) {
        endpoint -> Text,
        org_id -> Text,
        wanted_version -> BigInt,
        sent_version -> BigInt,
        attempts -> Integer,
        failing_since -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        next_attempt_at -> BigInt,
        leased_until -> BigInt,
    }
}

diesel::table! {
    admin_sessions (id_digest) {
        id_digest -> Text,
        token_name -> Text,
        read_only -> Bool,
        csrf_token -> Text,
        expires_at -> BigInt,
        token_fingerprint -> Text,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        until_ms -> BigInt,
    }
}

diesel::table! {
    rules_in_force (name) {
        name -> Text,
        rules -> Text,
        activated_at -> BigInt,
    }
}

diesel::table! {
    installation (id) {
        id -> Text,
    }
}

diesel::table! {
    feed_start (id) {
        id -> Integer,
        pruned_upto -> BigInt,
    }
}

diesel::joinable!(subscription_items -> subscriptions (subscription_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    subscriptions,
    subscription_items,
    entitlements,
    webhook_events,
    entitlement_changes,
    history_notes,
    purchases,
    payments,
    grants,
    notify_endpoints,
    notify_progress,
    admin_sessions,
    leases,
    rules_in_force,
    installation,
    feed_start,
);
