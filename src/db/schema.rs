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
    integrations (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        provider -> Text,
        status -> Text,
        credentials -> Text,
        webhook_secret -> Nullable<Text>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        last_sync_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        checkpoint -> Nullable<Jsonb>,
        disconnected_at -> Nullable<Timestamptz>,
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
    report_runs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        report_id -> Uuid,
        format -> Text,
        status -> Text,
        progress -> Float4,
        requested_by -> Nullable<Uuid>,
        scheduled_for -> Nullable<Timestamptz>,
        has_revenue -> Bool,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        error -> Nullable<Text>,
        file_key -> Nullable<Text>,
        file_bytes -> Nullable<Int8>,
        row_count -> Nullable<Int8>,
    }
}

diesel::table! {
    report_schedules (report_id) {
        report_id -> Uuid,
        tenant_id -> Uuid,
        cron -> Text,
        format -> Text,
        recipients -> Array<Uuid>,
        next_run_at -> Timestamptz,
    }
}

diesel::table! {
    report_widgets (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        report_id -> Uuid,
        position -> Int4,
        title -> Text,
        metric -> Text,
        granularity -> Text,
        range -> Text,
        event_name -> Nullable<Text>,
    }
}

diesel::table! {
    reports (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        owner_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
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
diesel::joinable!(integrations -> tenants (tenant_id));
diesel::joinable!(members -> tenants (tenant_id));
diesel::joinable!(refresh_tokens -> members (member_id));
diesel::joinable!(report_runs -> reports (report_id));
diesel::joinable!(report_schedules -> reports (report_id));
diesel::joinable!(report_widgets -> reports (report_id));
diesel::joinable!(reports -> members (owner_id));
diesel::joinable!(tenant_usage -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    active_transitions,
    api_keys,
    audit_log,
    end_users,
    event_client_ids,
    event_counts_daily,
    integrations,
    members,
    refresh_tokens,
    report_runs,
    report_schedules,
    report_widgets,
    reports,
    tenant_usage,
    tenants,
    user_days,
);
