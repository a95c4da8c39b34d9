//! One store suite, run on both backends: the same test body exercises every store trait
//! through `Stores` (and the call-log writer through its sink) on SQLite in a temp dir and
//! on a throwaway Postgres database. Postgres must be running (see `common::pg`): the
//! Postgres half fails, never skips, when it is not.

use crate::common;

use aihub::billing::Credits;
use aihub::config::{BillingConfig, Secret, StorageConfig};
use aihub::store::apps::hash_key;
use aihub::store::backend::Backend;
use aihub::store::budgets::Budget;
use aihub::store::calls::{CallFilter, CallLog, CallRecord, CallStatus};
use aihub::store::credits::LedgerFilter;
use aihub::store::limits::Scope;
use aihub::store::overview::OverviewQuery;
use aihub::store::providers::{CredentialChange, ProviderChange};
use aihub::store::rate_history::HistoryFilter;
use aihub::store::rates::Rate;
use aihub::store::responses::StoredResponse;
use aihub::store::secrets::{probe, Cipher};
use aihub::store::usage::{GroupBy, UsageFilter};
use aihub::store::{now_ms, StoreError};
use aihub::traffic::Limits;
use common::pg::TestDb;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Direct access to the rows, to check what the store keeps (and does not keep).
enum Raw {
    Sqlite(PathBuf),
    Pg(tokio_postgres::Client),
}

impl Raw {
    async fn secret_bytes(&self, id: i64) -> Vec<u8> {
        match self {
            Raw::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .query_row("SELECT secret FROM credentials WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap(),
            Raw::Pg(c) => c
                .query_one("SELECT secret FROM credentials WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get(0),
        }
    }

    /// The largest number of charge entries any call has.
    async fn max_charges_per_call(&self) -> i64 {
        let sql = "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM ledger WHERE kind = 'charge' GROUP BY call_id) t";
        match self {
            Raw::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Raw::Pg(c) => c.query_one(sql, &[]).await.unwrap().get(0),
        }
    }

    /// A second charge for a call must be refused by the database itself.
    async fn duplicate_charge_refused(&self, app: i64, call: i64) -> bool {
        let sql = "INSERT INTO ledger (app_id, kind, amount, balance_after, call_id, created_at) VALUES (";
        match self {
            Raw::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .execute(&format!("{sql}{app}, 'charge', -1, 0, {call}, 0)"), [])
                .is_err(),
            Raw::Pg(c) => c
                .execute(&format!("{sql}{app}, 'charge', -1, 0, {call}, 0)"), &[])
                .await
                .is_err(),
        }
    }
}

fn record(
    app: i64,
    key: Option<i64>,
    cred: Option<i64>,
    i: i64,
    at: i64,
    charge: i64,
) -> CallRecord {
    CallRecord {
        request_id: format!("req-{i}"),
        app_id: Some(app),
        key_id: key,
        provider: "p1".into(),
        model: if i % 2 == 0 {
            "p1/m-even".into()
        } else {
            "p1/m-odd".into()
        },
        credential_id: cred,
        endpoint: "chat",
        stream: i % 3 == 0,
        status: if i % 5 == 4 {
            CallStatus::Error
        } else {
            CallStatus::Ok
        },
        http_status: if i % 5 == 4 { 502 } else { 200 },
        error_class: (i % 5 == 4).then(|| "upstream".to_string()),
        error_message: (i % 5 == 4).then(|| "bad gateway".to_string()),
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 2,
        cost_micros: 7,
        latency_ms: 10 + i as u64,
        ttfb_ms: Some(1 + i as u64),
        attempts: 1,
        created_at: at,
        credentials_tried: cred.into_iter().collect(),
        requested_model: None,
        format: "openai_chat",
        cache_hit: false,
        charge_nanos: charge,
        hold_nanos: 0,
        hold_id: None,
    }
}

fn not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
}

async fn suite(backend: Backend, raw: Raw) {
    // Migrations: fresh, then a no-op.
    let latest = backend.latest_version();
    assert_eq!(backend.migrate().await.unwrap(), (0, latest));
    assert_eq!(backend.migrate().await.unwrap(), (latest, latest));
    assert!(backend.secret_sample().await.unwrap().is_empty());

    let cipher = Cipher::generate();
    let served = backend.serve(cipher.clone());
    let s = served.stores.clone();

    // Settings.
    s.meta.ping().await.unwrap();
    assert_eq!(s.meta.setting("x".into()).await.unwrap(), None);
    s.meta.set_setting("x".into(), "1".into()).await.unwrap();
    s.meta.set_setting("x".into(), "2".into()).await.unwrap();
    assert_eq!(
        s.meta.setting("x".into()).await.unwrap().as_deref(),
        Some("2")
    );

    // Apps and keys.
    let a = s.apps.create_app("alpha".into(), None).await.unwrap();
    assert!(a.enabled);
    assert!(matches!(
        s.apps.create_app("alpha".into(), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.apps.create_app("  ".into(), None).await,
        Err(StoreError::Invalid { .. })
    ));
    let b = s.apps.create_app("beta".into(), Some(false)).await.unwrap();
    assert!(!b.enabled);
    let b = s
        .apps
        .update_app(b.id, Some("beta2".into()), Some(true))
        .await
        .unwrap();
    assert_eq!((b.name.as_str(), b.enabled), ("beta2", true));
    assert!(matches!(
        s.apps.update_app(b.id, Some("alpha".into()), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.apps.list_apps().await.unwrap().len(), 2);
    not_found(s.apps.get_app(9999).await);
    let (key, plain) = s.apps.create_key(a.id, Some(" k1 ".into())).await.unwrap();
    assert_eq!(key.name.as_deref(), Some("k1"));
    assert!(plain.starts_with("ak-") && plain.starts_with(&key.prefix));
    not_found(s.apps.create_key(9999, None).await);
    let (key2, plain2) = s.apps.create_key(a.id, None).await.unwrap();
    assert_eq!(s.apps.list_keys(a.id).await.unwrap().len(), 2);
    assert_eq!(s.apps.get_app(a.id).await.unwrap().active_keys, 2);
    let owner = s.apps.key_owner(hash_key(&plain)).await.unwrap().unwrap();
    assert_eq!(
        (owner.key_id, owner.app_id, &*owner.app_name),
        (key.id, a.id, "alpha")
    );
    assert!(owner.app_enabled && !owner.revoked);
    assert!(s
        .apps
        .key_owner(hash_key("ak-nope"))
        .await
        .unwrap()
        .is_none());
    let revoked = s.apps.revoke_key(a.id, key2.id).await.unwrap();
    let again = s.apps.revoke_key(a.id, key2.id).await.unwrap();
    assert_eq!(revoked.revoked_at, again.revoked_at);
    assert!(
        s.apps
            .key_owner(hash_key(&plain2))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    not_found(s.apps.revoke_key(b.id, key2.id).await);
    let gone = s.apps.create_app("gone".into(), None).await.unwrap();
    s.apps.delete_app(gone.id).await.unwrap();
    not_found(s.apps.delete_app(gone.id).await);
    not_found(s.apps.list_keys(gone.id).await);

    // Providers and credentials; secrets are sealed.
    let p = s
        .providers
        .create_provider(ProviderChange {
            prefix: Some("p1".into()),
            plugin: Some("openai".into()),
            base_url: Some(Some("http://127.0.0.1:9".into())),
            models: Some(Some(vec!["m-even".into()])),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p.options, json!({}));
    assert!(matches!(
        s.providers
            .create_provider(ProviderChange {
                prefix: Some("p1".into()),
                plugin: Some("openai".into()),
                ..Default::default()
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.providers
            .create_provider(ProviderChange {
                prefix: Some("a/b".into()),
                plugin: Some("openai".into()),
                ..Default::default()
            })
            .await,
        Err(StoreError::Invalid { .. })
    ));
    let p = s
        .providers
        .update_provider(
            p.id,
            ProviderChange {
                options: Some(json!({"x": 1})),
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p.options, json!({"x": 1}));
    assert_eq!(p.models, Some(vec!["m-even".to_string()]));
    assert_eq!(s.providers.list_providers().await.unwrap().len(), 1);
    let secret = "sk-plaintext-secret-0123456789";
    let cred = s
        .providers
        .create_credential(p.id, "main".into(), secret.into(), Some(2), None)
        .await
        .unwrap();
    assert_eq!(cred.secret, "sk-...6789");
    assert_eq!(cred.weight, 2);
    let stored = raw.secret_bytes(cred.id).await;
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the database row holds the plaintext secret"
    );
    assert!(matches!(
        s.providers
            .create_credential(
                p.id,
                "main".into(),
                "sk-other-000000000000".into(),
                None,
                None
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.providers.credential_secret(p.id, cred.id).await.unwrap(),
        secret
    );
    let live = s.providers.live_credentials().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].secret, secret);
    let new_secret = "sk-rotated-secret-abcdefghij";
    let cred = s
        .providers
        .update_credential(
            p.id,
            cred.id,
            CredentialChange {
                secret: Some(new_secret.into()),
                weight: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((cred.weight, cred.secret.as_str()), (3, "sk-...ghij"));
    assert_eq!(
        s.providers.credential_secret(p.id, cred.id).await.unwrap(),
        new_secret
    );
    s.providers
        .set_credential_state(
            cred.id,
            "cooldown".into(),
            Some(123),
            Some("err sk-abcdefghijklmnopqrstuvwxyz".into()),
        )
        .await
        .unwrap();
    let got = s.providers.get_credential(p.id, cred.id).await.unwrap();
    assert_eq!(got.state, "cooldown");
    let live = s.providers.live_credentials().await.unwrap();
    assert_eq!(live[0].state_until, Some(123));
    // The master key: the sample opens under this key only; re-sealing round-trips.
    let sample = s.meta.secret_sample().await.unwrap();
    assert_eq!(probe(&sample, &cipher), Some(true));
    assert_eq!(probe(&sample, &Cipher::generate()), Some(false));
    let other = Cipher::generate();
    assert_eq!(
        s.meta
            .reencrypt_all(cipher.clone(), other.clone())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        probe(&s.meta.secret_sample().await.unwrap(), &other),
        Some(true)
    );
    assert!(s
        .meta
        .reencrypt_all(cipher.clone(), other.clone())
        .await
        .is_err());
    assert_eq!(
        s.meta.reencrypt_all(other, cipher.clone()).await.unwrap(),
        1
    );
    assert_eq!(
        s.providers.credential_secret(p.id, cred.id).await.unwrap(),
        new_secret
    );
    let spare = s
        .providers
        .create_credential(
            p.id,
            "spare".into(),
            "sk-spare-0000000000000".into(),
            None,
            Some(false),
        )
        .await
        .unwrap();
    assert_eq!(s.providers.list_credentials(p.id).await.unwrap().len(), 2);
    assert_eq!(s.providers.live_credentials().await.unwrap().len(), 1);
    s.providers.delete_credential(p.id, spare.id).await.unwrap();
    not_found(s.providers.delete_credential(p.id, spare.id).await);
    not_found(s.providers.get_credential(p.id, spare.id).await);
    not_found(s.providers.get_provider(9999).await);

    // Rates, app prices and their history.
    let rate = Rate {
        model: "p1/m-even".into(),
        input_per_mtok_micros: 1_000_000,
        output_per_mtok_micros: 2_000_000,
        cached_per_mtok_micros: Some(500_000),
        ..Rate::default()
    };
    let saved = s.rates.put_rate(rate.clone()).await.unwrap();
    assert_eq!(saved.output_per_mtok_micros, 2_000_000);
    assert!(saved.updated_at > 0);
    assert!(matches!(
        s.rates
            .put_rate(Rate {
                model: "noprefix".into(),
                ..Rate::default()
            })
            .await,
        Err(StoreError::Invalid { .. })
    ));
    let n = s
        .rates
        .import_rates(
            vec![
                Rate {
                    model: "p1/m-odd".into(),
                    input_per_mtok_micros: 3,
                    output_per_mtok_micros: 4,
                    ..Rate::default()
                },
                Rate {
                    model: "p1/m-even".into(),
                    input_per_mtok_micros: 5,
                    output_per_mtok_micros: 6,
                    ..Rate::default()
                },
            ],
            "test.json".into(),
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let rates = s.rates.list_rates().await.unwrap();
    assert_eq!(rates.len(), 2);
    assert_eq!(rates[0].model, "p1/m-even");
    assert_eq!(rates[0].input_per_mtok_micros, 5);
    s.rates.delete_rate("p1/m-odd".into()).await.unwrap();
    not_found(s.rates.delete_rate("p1/m-odd".into()).await);
    let price = s.rates.put_app_price(a.id, rate.clone()).await.unwrap();
    assert_eq!(
        (price.app_id, price.price.input_per_mtok_micros),
        (a.id, 1_000_000)
    );
    not_found(s.rates.put_app_price(9999, rate.clone()).await);
    not_found(s.rates.list_app_prices(Some(9999)).await);
    assert_eq!(s.rates.list_app_prices(Some(a.id)).await.unwrap().len(), 1);
    assert_eq!(s.rates.list_app_prices(None).await.unwrap().len(), 1);
    s.rates
        .delete_app_price(a.id, "p1/m-even".into())
        .await
        .unwrap();
    not_found(s.rates.delete_app_price(a.id, "p1/m-even".into()).await);
    let (all, _) = s
        .rates
        .rate_history(HistoryFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    // put, import ×2, delete, app put, app delete.
    let actions: Vec<_> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["delete", "put", "delete", "import", "import", "put"]
    );
    assert!(all[0].prices.is_none() && all[1].prices.is_some());
    assert_eq!(all[1].app_id, Some(a.id));
    assert_eq!(all[3].note.as_deref(), Some("test.json"));
    let (page1, next) = s
        .rates
        .rate_history(HistoryFilter {
            model: Some("p1/m-even".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.len(), 2);
    let (page2, next2) = s
        .rates
        .rate_history(HistoryFilter {
            model: Some("p1/m-even".into()),
            cursor: next,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page2.len(), next2), (2, None));
    let (apps_only, _) = s
        .rates
        .rate_history(HistoryFilter {
            app_id: Some(a.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(apps_only.len(), 2);

    // Aliases.
    let al = s
        .aliases
        .put_alias(
            "smart".into(),
            vec!["p1/m-even".into()],
            "ordered".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(al.targets, vec!["p1/m-even".to_string()]);
    let al2 = s
        .aliases
        .put_alias(
            "smart".into(),
            vec!["p1/m-even".into(), "p1/m-odd".into()],
            "weighted".into(),
            Some(vec![1, 3]),
        )
        .await
        .unwrap();
    assert_eq!(
        (al2.created_at, al2.weights.clone()),
        (al.created_at, Some(vec![1, 3]))
    );
    assert!(matches!(
        s.aliases
            .put_alias("x".into(), vec!["p1/m".into()], "random".into(), None)
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(s.aliases.list_aliases().await.unwrap().len(), 1);
    s.aliases.delete_alias("smart".into()).await.unwrap();
    not_found(s.aliases.delete_alias("smart".into()).await);

    // Limits.
    let empty = s.limits.get_limits(Scope::App(a.id)).await.unwrap();
    assert!(empty.is_empty());
    let lim: Limits =
        serde_json::from_value(json!({"rpm": 60, "models": {"p1/m-even": {"tpm": 1000}}})).unwrap();
    s.limits
        .put_limits(Scope::App(a.id), lim.clone())
        .await
        .unwrap();
    let back = s.limits.get_limits(Scope::App(a.id)).await.unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&lim).unwrap()
    );
    let klim: Limits = serde_json::from_value(json!({"max_concurrent": 2})).unwrap();
    s.limits
        .put_limits(Scope::Key(a.id, key.id), klim)
        .await
        .unwrap();
    not_found(s.limits.get_limits(Scope::Key(b.id, key.id)).await);
    not_found(s.limits.put_limits(Scope::App(9999), lim.clone()).await);
    let (apps_l, keys_l) = s.limits.all_limits().await.unwrap();
    assert!(apps_l.contains_key(&a.id) && keys_l.contains_key(&key.id));
    s.limits
        .put_limits(Scope::Key(a.id, key.id), Limits::default())
        .await
        .unwrap();
    assert!(s.limits.all_limits().await.unwrap().1.is_empty());

    // Responses.
    let now = now_ms();
    let resp = StoredResponse {
        id: "resp_1".into(),
        app_id: a.id,
        model: "p1/m-even".into(),
        provider: "p1".into(),
        native: false,
        body: "{}".into(),
        conversation: Some("[]".into()),
        created_at: now,
        expires_at: now + 60_000,
    };
    s.responses.save_response(resp.clone()).await.unwrap();
    assert_eq!(
        s.responses
            .get_response(a.id, "resp_1".into())
            .await
            .unwrap(),
        Some(resp.clone())
    );
    assert_eq!(
        s.responses
            .get_response(b.id, "resp_1".into())
            .await
            .unwrap(),
        None
    );
    // Another app cannot overwrite it.
    s.responses
        .save_response(StoredResponse {
            app_id: b.id,
            body: "{\"evil\":1}".into(),
            ..resp.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        s.responses
            .get_response(a.id, "resp_1".into())
            .await
            .unwrap()
            .unwrap()
            .body,
        "{}"
    );
    s.responses
        .save_response(StoredResponse {
            id: "resp_old".into(),
            expires_at: now - 1,
            ..resp.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        s.responses
            .get_response(a.id, "resp_old".into())
            .await
            .unwrap(),
        None
    );
    assert!(!s
        .responses
        .delete_response(b.id, "resp_1".into())
        .await
        .unwrap());
    assert!(s
        .responses
        .delete_response(a.id, "resp_1".into())
        .await
        .unwrap());

    // Credits.
    let g = s
        .credits
        .grant_credits(a.id, 1_000, None, Some("start".into()))
        .await
        .unwrap();
    assert_eq!(
        (g.amount, g.remaining, g.note.as_deref()),
        (1_000, 1_000, Some("start"))
    );
    assert!(matches!(
        s.credits.grant_credits(a.id, 0, None, None).await,
        Err(StoreError::Invalid { .. })
    ));
    not_found(s.credits.grant_credits(9999, 5, None, None).await);
    assert!(s
        .credits
        .grant_credits_once("evt_1".into(), a.id, 500, None)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .credits
        .grant_credits_once("evt_1".into(), a.id, 500, None)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.credits.credit_balance(a.id).await.unwrap(), (1_500, None));
    // A grant already expired is taken out by the next read, and by expire_credits.
    s.credits
        .grant_credits(b.id, 300, Some(now - 1), None)
        .await
        .unwrap();
    s.credits
        .grant_credits(a.id, 200, Some(now + 3_600_000), None)
        .await
        .unwrap();
    assert_eq!(s.credits.expire_credits().await.unwrap(), 1);
    assert_eq!(s.credits.credit_summary(b.id).await.unwrap().balance, 0);
    let sum = s.credits.credit_summary(a.id).await.unwrap();
    assert_eq!(
        (sum.balance, sum.next_expiry, sum.grants.len()),
        (1_700, Some(now + 3_600_000), 3)
    );
    let adj = s
        .credits
        .adjust_credits(a.id, 100, "bonus".into())
        .await
        .unwrap();
    assert_eq!(
        (adj.kind.as_str(), adj.amount, adj.balance_after),
        ("adjustment", 100, 1_800)
    );
    let adj = s
        .credits
        .adjust_credits(a.id, -50, "fix".into())
        .await
        .unwrap();
    assert_eq!((adj.amount, adj.balance_after), (-50, 1_750));
    assert!(matches!(
        s.credits.adjust_credits(a.id, 0, "x".into()).await,
        Err(StoreError::Invalid { .. })
    ));
    // The grant that expires first was consumed first.
    let sum = s.credits.credit_summary(a.id).await.unwrap();
    let expiring = sum.grants.iter().find(|g| g.expires_at.is_some()).unwrap();
    assert_eq!(expiring.remaining, 150);

    // Credit holds the store keeps (Postgres, shared by every instance on it); SQLite's
    // holds are the instance's memory.
    if s.credits.shares_holds() {
        use aihub::store::credits::HoldResult;
        let bal = s.credits.credit_balance(a.id).await.unwrap().0;
        let far = now_ms() + 3_600_000;
        let HoldResult::Held(h1) = s.credits.hold_credit(a.id, bal - 100, far).await.unwrap()
        else {
            panic!("the first hold fits");
        };
        assert_eq!(s.credits.held_credit(a.id).await.unwrap(), bal - 100);
        assert_eq!(
            s.credits.hold_credit(a.id, 101, far).await.unwrap(),
            HoldResult::Short {
                balance: bal,
                held: bal - 100
            }
        );
        // A hold whose lease has ended no longer counts.
        let HoldResult::Held(h2) = s
            .credits
            .hold_credit(a.id, 100, now_ms() - 1)
            .await
            .unwrap()
        else {
            panic!("the rest fits");
        };
        assert_eq!(s.credits.held_credit(a.id).await.unwrap(), bal - 100);
        s.credits.release_holds(vec![h1, h2]).await.unwrap();
        assert_eq!(s.credits.held_credit(a.id).await.unwrap(), 0);
        assert_eq!(
            s.credits.credit_balance(a.id).await.unwrap().0,
            bal,
            "holds never move the balance"
        );
        not_found(s.credits.hold_credit(9999, 1, far).await);
    } else {
        assert!(s.credits.hold_credit(a.id, 1, now_ms()).await.is_err());
    }

    // Calls through the writer: records, charges, rollups and alerts in one batch.
    served.charge_alerts.set(true, 1_600);
    let credits = Arc::new(Credits::new(&BillingConfig {
        enabled: true,
        ..Default::default()
    }));
    let log = CallLog::start_billing(served.sink.clone(), 10_000, Some(credits));
    let t0 = (now / 3_600_000) * 3_600_000 - 2 * 3_600_000;
    for i in 0..40i64 {
        let ok = i % 5 != 4;
        let (app, k, c) = if i < 30 {
            (a.id, Some(key.id), Some(cred.id))
        } else {
            (b.id, None, None)
        };
        log.record(record(
            app,
            k,
            c,
            i,
            t0 + i * 60_000,
            if ok && app == a.id { 10 } else { 0 },
        ));
    }
    log.shutdown();
    assert_eq!((log.written(), log.dropped()), (40, 0));
    let (rows, next) = s
        .calls
        .list_calls(CallFilter {
            app_id: Some(a.id),
            limit: 20,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    assert!(rows.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(rows[0].request_id, "req-29");
    assert_eq!(rows[0].credentials_tried, Some(format!("[{}]", cred.id)));
    let (rest, end) = s
        .calls
        .list_calls(CallFilter {
            app_id: Some(a.id),
            cursor: next,
            limit: 20,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((rest.len(), end), (10, None));
    let (one, _) = s
        .calls
        .list_calls(CallFilter {
            request_id: Some("req-4".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].status.as_str(), one[0].http_status), ("error", 502));
    assert_eq!(one[0].error_message.as_deref(), Some("bad gateway"));
    let (errs, _) = s
        .calls
        .list_calls(CallFilter {
            status: Some("error".into()),
            model: Some("p1/m-even".into()),
            since: Some(t0),
            until: Some(t0 + 40 * 60_000),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(errs.len(), 4); // i = 4, 14, 24, 34
    let win = s
        .calls
        .call_export_window(CallFilter {
            limit: 15,
            ..Default::default()
        })
        .await
        .unwrap();
    let newest = s
        .calls
        .list_calls(CallFilter {
            limit: 15,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(win.top, Some(newest[0].id));
    assert_eq!(win.next_cursor, Some(newest[14].id));
    let usage = s
        .calls
        .usage(GroupBy::App, UsageFilter::default())
        .await
        .unwrap();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].key, json!(a.id));
    assert_eq!(usage[0].app_name.as_deref(), Some("alpha"));
    assert_eq!(
        (usage[0].calls, usage[0].errors, usage[0].input_tokens),
        (30, 6, 300)
    );
    assert_eq!(usage[0].cost_micros, 210);
    let by_model = s
        .calls
        .usage(GroupBy::Model, UsageFilter::default())
        .await
        .unwrap();
    assert_eq!(by_model[0].key, json!("p1/m-even"));
    assert_eq!(by_model.iter().map(|u| u.calls).sum::<i64>(), 40);
    let by_hour = s
        .calls
        .usage(
            GroupBy::Hour,
            UsageFilter {
                app_id: Some(a.id),
                since: Some(t0),
                until: Some(now + 3_600_000),
            },
        )
        .await
        .unwrap();
    assert_eq!(by_hour[0].key, json!(t0 / 1000));
    assert_eq!(by_hour.iter().map(|u| u.calls).sum::<i64>(), 30);
    let by_day = s
        .calls
        .usage(GroupBy::Day, UsageFilter::default())
        .await
        .unwrap();
    assert_eq!(by_day.iter().map(|u| u.calls).sum::<i64>(), 40);
    let by_provider = s
        .calls
        .usage(GroupBy::Provider, UsageFilter::default())
        .await
        .unwrap();
    assert_eq!(
        (by_provider.len(), by_provider[0].key.clone()),
        (1, json!("p1"))
    );
    let ov = s
        .calls
        .overview(OverviewQuery {
            since: t0,
            until: t0 + 3_600_000 * 3,
            bucket_s: 3600,
            app_id: Some(a.id),
        })
        .await
        .unwrap();
    assert_eq!(
        (ov.totals.calls, ov.totals.errors, ov.totals.cost_micros),
        (30, 6, 210)
    );
    // Latencies 10..39 for i = 0..29: nearest-rank p50 = 15th = 24, p95 = 29th = 38.
    assert_eq!(
        (ov.totals.latency_p50_ms, ov.totals.latency_p95_ms),
        (Some(24), Some(38))
    );
    assert_eq!(ov.previous.calls, 0);
    assert_eq!(ov.series.iter().map(|p| p.calls).sum::<i64>(), 30);
    assert!(ov.series[0].latency_avg_ms.is_some());
    assert_eq!(ov.top_models.len(), 2);
    assert_eq!(ov.top_apps[0].app_name.as_deref(), Some("alpha"));
    // The key's and credential's last use.
    let k = s.apps.list_keys(a.id).await.unwrap();
    assert_eq!(k[0].last_used_at, Some(t0 + 29 * 60_000));
    let c = s.providers.get_credential(p.id, cred.id).await.unwrap();
    assert_eq!((c.use_count, c.last_used_at), (30, Some(t0 + 29 * 60_000)));

    // Charges: one per successful call of app a (24 × 10), exactly once each.
    let sum = s.credits.credit_summary(a.id).await.unwrap();
    assert_eq!(sum.balance, 1_750 - 240);
    let (ledger, _) = s
        .credits
        .list_ledger(LedgerFilter {
            app_id: Some(a.id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let charges: Vec<_> = ledger.iter().filter(|e| e.kind == "charge").collect();
    assert_eq!(charges.len(), 24);
    assert_eq!(ledger[0].balance_after, sum.balance);
    assert_eq!(ledger.iter().map(|e| e.amount).sum::<i64>(), sum.balance);
    assert_eq!(raw.max_charges_per_call().await, 1);
    let charged_call = charges[0].call_id.unwrap();
    assert!(raw.duplicate_charge_refused(a.id, charged_call).await);
    let (page, cur) = s
        .credits
        .list_ledger(LedgerFilter {
            app_id: Some(a.id),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(cur, Some(page[4].id));
    // Refunds: part, the rest, then nothing is left.
    let r1 = s
        .credits
        .refund_call(a.id, charged_call, Some(4), Some("sorry".into()))
        .await
        .unwrap();
    assert_eq!(
        (r1.kind.as_str(), r1.amount, r1.call_id),
        ("refund", 4, Some(charged_call))
    );
    let r2 = s
        .credits
        .refund_call(a.id, charged_call, None, None)
        .await
        .unwrap();
    assert_eq!(r2.amount, 6);
    assert!(matches!(
        s.credits.refund_call(a.id, charged_call, None, None).await,
        Err(StoreError::Invalid { .. })
    ));
    not_found(s.credits.refund_call(b.id, charged_call, None, None).await);
    // Crossing 1 600 while charging wrote one low-balance alert in the batch.
    let due = s.alerts.due_alerts(now_ms() + 1, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].event, "credits.low");
    let data: serde_json::Value = serde_json::from_str(&due[0].data).unwrap();
    assert_eq!(data["app_id"], json!(a.id));
    assert!(
        s.alerts
            .due_alerts(now_ms() + 1, 10)
            .await
            .unwrap()
            .is_empty(),
        "a claimed event goes to one deliverer"
    );

    // Budgets and the spend they are checked against.
    assert!(s
        .budgets
        .get_budget(Scope::App(a.id))
        .await
        .unwrap()
        .is_empty());
    let cap = Budget {
        daily_micros: Some(1_000),
        monthly_micros: None,
    };
    s.budgets.put_budget(Scope::App(a.id), cap).await.unwrap();
    s.budgets
        .put_budget(
            Scope::Key(a.id, key.id),
            Budget {
                daily_micros: None,
                monthly_micros: Some(5),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.budgets.get_budget(Scope::App(a.id)).await.unwrap(), cap);
    assert!(matches!(
        s.budgets
            .put_budget(
                Scope::App(a.id),
                Budget {
                    daily_micros: Some(-1),
                    monthly_micros: None
                }
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    not_found(s.budgets.get_budget(Scope::Key(b.id, key.id)).await);
    let (ab, kb) = s.budgets.all_budgets().await.unwrap();
    assert_eq!((ab.len(), kb.len()), (1, 1));
    s.budgets
        .put_budget(Scope::App(a.id), Budget::default())
        .await
        .unwrap();
    assert!(s.budgets.all_budgets().await.unwrap().0.is_empty());
    let day0 = (t0 / 86_400_000) * 86_400_000;
    assert_eq!(
        s.budgets.spent_since(Scope::App(a.id), t0).await.unwrap(),
        210
    );
    assert_eq!(
        s.budgets
            .spent_since(Scope::App(a.id), now + 3_600_000)
            .await
            .unwrap(),
        0
    );
    let key_spend = s
        .budgets
        .spent_since(Scope::Key(a.id, key.id), day0)
        .await
        .unwrap();
    assert_eq!(key_spend, 210);

    // The alert outbox.
    s.alerts
        .enqueue_alert("test.event".into(), "{\"n\":1}".into())
        .await
        .unwrap();
    // Two deliverers at once never get the same event.
    for n in 0..20 {
        s.alerts
            .enqueue_alert("burst.event".into(), format!("{{\"n\":{n}}}"))
            .await
            .unwrap();
    }
    let (x, y) = tokio::join!(
        s.alerts.due_alerts(now_ms() + 1, 15),
        s.alerts.due_alerts(now_ms() + 1, 15)
    );
    let mut ids: Vec<i64> = x.unwrap().iter().chain(&y.unwrap()).map(|a| a.id).collect();
    let handed_out = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (handed_out, ids.len()),
        (21, 21),
        "each of the 21 due events claimed once: {ids:?}"
    );
    for id in ids {
        s.alerts.alert_delivered(id).await.unwrap();
    }
    s.alerts
        .enqueue_alert("test.event".into(), "{\"n\":1}".into())
        .await
        .unwrap();
    // A claim runs out: the low-balance event, claimed above and never settled, is due
    // again once its claim has passed (its deliverer died).
    let due = s
        .alerts
        .due_alerts(now_ms() + aihub::store::alerts::CLAIM_MS + 1, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    assert!(s.alerts.next_alert_due().await.unwrap().is_some());
    s.alerts.alert_delivered(due[0].id).await.unwrap();
    s.alerts
        .alert_failed(due[1].id, Some(now_ms() + 60_000), "503".into())
        .await
        .unwrap();
    assert!(s
        .alerts
        .due_alerts(now_ms() + 1, 10)
        .await
        .unwrap()
        .is_empty());
    let later = s.alerts.due_alerts(now_ms() + 120_000, 10).await.unwrap();
    assert_eq!((later.len(), later[0].attempts), (1, 1));
    s.alerts
        .alert_failed(later[0].id, None, "gave up".into())
        .await
        .unwrap();
    assert_eq!(s.alerts.next_alert_due().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_suite_sqlite() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::open(&StorageConfig {
        data_dir: dir.path().to_path_buf(),
        url: None,
        pool_size: 4,
        outage_grace_seconds: 300,
    })
    .await
    .unwrap();
    suite(backend, Raw::Sqlite(dir.path().join("aihub.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_suite_postgres() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::open(&StorageConfig {
        data_dir: dir.path().to_path_buf(),
        url: Some(Secret::new(db.url())),
        pool_size: 4,
        outage_grace_seconds: 300,
    })
    .await
    .unwrap();
    suite(backend, Raw::Pg(db.client().await)).await;
}
