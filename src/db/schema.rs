// Kept as `diesel print-schema` writes it (see diesel.toml); edit the migrations, then regenerate.

diesel::table! {
    active_transitions (tenant_id, day, prev_day) {
        tenant_id -> Uuid,
        day -> Date,
        prev_day -> Date,
        users -> Int4,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        key_prefix -> Text,
        key_hash -> Bytea,
        scopes -> Array<Text>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        actor_kind -> Text,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
        details -> Jsonb,
    }
}

diesel::table! {
    end_users (tenant_id, user_id) {
        tenant_id -> Uuid,
        user_id -> Text,
        first_seen -> Timestamptz,
        last_seen -> Timestamptz,
        properties -> Jsonb,
    }
}

diesel::table! {
    event_client_ids (tenant_id, client_id) {
        tenant_id -> Uuid,
        client_id -> Text,
    }
}

diesel::table! {
    event_counts_daily (tenant_id, day, name) {
        tenant_id -> Uuid,
        day -> Date,
        name -> Text,
        events -> Int8,
    }
}

diesel::table! {
    members (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        is_operator -> Bool,
        created_at -> Timestamptz,
        last_active_at -> Nullable<Timestamptz>,
        removed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        member_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    tenant_usage (tenant_id) {
        tenant_id -> Uuid,
        events_total -> Int8,
        data_version -> Int8,
    }
}

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
        timezone -> Text,
        currency -> Text,
        created_at -> Timestamptz,
        retention_months -> Nullable<Int4>,
        tracked_properties -> Array<Text>,
        rollup_properties -> Array<Text>,
    }
}

diesel::table! {
    user_days (tenant_id, user_id, day) {
        tenant_id -> Uuid,
        user_id -> Text,
        day -> Date,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(members -> tenants (tenant_id));
diesel::joinable!(refresh_tokens -> members (member_id));
diesel::joinable!(tenant_usage -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    active_transitions,
    api_keys,
    audit_log,
    end_users,
    event_client_ids,
    event_counts_daily,
    members,
    refresh_tokens,
    tenant_usage,
    tenants,
    user_days,
);
