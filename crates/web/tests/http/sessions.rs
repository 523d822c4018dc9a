//! Session lifetime: idle timeout and absolute timeout.

use clinic_auth_core::{OrgKind, Role};

use crate::both_stores;
use crate::harness::TestApp;

both_stores!(sessions_end_after_fifteen_idle_minutes, sessions_end_at_the_absolute_limit_even_when_used);

async fn sessions_end_after_fifteen_idle_minutes(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let token = app.token("staff", "dr.lee@riverside.test").await;
    app.clock.advance(14 * 60);
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 200, "use keeps it alive");
    app.clock.advance(14 * 60 + 59);
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 200);
    app.clock.advance(15 * 60);
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 401, "15 idle minutes end it");
    app.clock.advance(-15 * 60);
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 401, "an ended session is deleted, not just hidden");
}

async fn sessions_end_at_the_absolute_limit_even_when_used(app: TestApp) {
    let org = app.org("Riverside Clinic", OrgKind::Clinic).await;
    app.member(&org, "dr.lee@riverside.test", Role::Provider).await;
    let token = app.token("staff", "dr.lee@riverside.test").await;
    for _ in 0..(12 * 6 - 1) {
        app.clock.advance(10 * 60);
        assert_eq!(app.get_json("/api/v1/me", &token).await.0, 200);
    }
    app.clock.advance(10 * 60);
    assert_eq!(app.get_json("/api/v1/me", &token).await.0, 401, "12 hours is the limit");
}
