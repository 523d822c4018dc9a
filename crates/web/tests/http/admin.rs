//! Creating organizations and accounts over the API, with its permission checks, and
//! password-reset links.

use clinic_auth_core::{OrgKind, Role};
use serde_json::{Value, json};

use crate::both_stores;
use crate::harness::{PASSWORD, TestApp};

both_stores!(
    platform_admin_creates_an_organization_and_invites_staff,
    clinic_admins_manage_only_their_own_organization,
    password_reset_link_sets_a_new_password_and_ends_sessions,
);

async fn platform_admin_creates_an_organization_and_invites_staff(app: TestApp) {
    app.platform_admin("support@platform.test").await;
    let t = app.token("staff", "support@platform.test").await;
    let (status, org) = app.post_json("/api/v1/orgs", &t, json!({"name": "Riverside Clinic", "kind": "clinic"})).await;
    assert_eq!(status, 201, "{org}");
    assert_eq!(org["id"], "riverside-clinic");
    let (status, again) =
        app.post_json("/api/v1/orgs", &t, json!({"name": "Riverside Clinic", "kind": "clinic"})).await;
    assert_eq!((status, again["id"].as_str()), (201, Some("riverside-clinic-2")), "a taken id gets a suffix");
    let (status, err) = app.post_json("/api/v1/orgs", &t, json!({"name": "X", "kind": "hospital"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("invalid_kind")));

    let (status, added) = app
        .post_json(
            "/api/v1/orgs/riverside-clinic/members",
            &t,
            json!({"email": "owner@riverside.test", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["account"]["password_set"], false);
    // The invitation goes out by email to the new member alone; the admin who invited
    // never gets the link (whoever holds it chooses the password).
    assert_eq!(added["invitation_emailed"], true, "{added}");
    assert!(added.get("invitation_url").is_none(), "{added}");
    assert!(!added.to_string().contains("/invite/"), "{added}");
    let mail = app.smtp.wait_for(1, std::time::Duration::from_secs(5)).await;
    let mail = mail.iter().find(|m| m.to == vec!["owner@riverside.test".to_owned()]).expect("invitation email");
    assert_eq!(mail.subject().as_deref(), Some("You're invited to sign in to Riverside Clinic"));
    let text = mail.text_body().unwrap();
    let invite = text.split_whitespace().find(|w| w.contains("/invite/")).expect("the email carries the link");
    assert!(invite.starts_with(&format!("{}/invite/", app.base)));
    let (status, dup) = app
        .post_json(
            "/api/v1/orgs/riverside-clinic/members",
            &t,
            json!({"email": "OWNER@riverside.test", "role": "staff"}),
        )
        .await;
    assert_eq!((status, dup["error"]["code"].as_str()), (409, Some("email_taken")));

    // The invitee sets a password through the API.
    let token = invite.rsplit('/').next().unwrap();
    let res = app
        .api()
        .post(app.url(&format!("/api/v1/password-links/{token}")))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["password_set"], true);
    let res = app
        .api()
        .post(app.url(&format!("/api/v1/password-links/{token}")))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    assert_eq!(app.api_login("staff", "owner@riverside.test", PASSWORD).await.status(), 200);

    let (status, pa) =
        app.post_json("/api/v1/orgs/riverside-clinic/patients", &t, json!({"email": "pat@example.test"})).await;
    assert_eq!((status, pa["account"]["kind"].as_str()), (201, Some("patient")));
    let (status, admin2) = app.post_json("/api/v1/platform-admins", &t, json!({"email": "second@platform.test"})).await;
    assert_eq!((status, admin2["account"]["kind"].as_str()), (201, Some("platform_admin")));
    for added in [&pa, &admin2] {
        assert_eq!(added["invitation_emailed"], true, "{added}");
        assert!(added.get("invitation_url").is_none() && !added.to_string().contains("/invite/"), "{added}");
    }
}

async fn clinic_admins_manage_only_their_own_organization(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let b = app.org("Clinic B", OrgKind::Clinic).await;
    app.member(&a, "owner@a.test", Role::Owner).await;
    app.member(&a, "admin@a.test", Role::Admin).await;
    app.member(&a, "doc@a.test", Role::Provider).await;
    app.member(&b, "owner@b.test", Role::Owner).await;
    let admin = app.token("staff", "admin@a.test").await;
    let doc = app.token("staff", "doc@a.test").await;
    let owner = app.token("staff", "owner@a.test").await;

    let members = format!("/api/v1/orgs/{}/members", a.id);
    let (s, _) = app.post_json(&members, &admin, json!({"email": "nurse@a.test", "role": "staff"})).await;
    assert_eq!(s, 201);
    let (s, e) = app.post_json(&members, &admin, json!({"email": "boss@a.test", "role": "owner"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")), "an admin cannot make an owner");
    let (s, _) = app.post_json(&members, &owner, json!({"email": "boss@a.test", "role": "owner"})).await;
    assert_eq!(s, 201, "an owner can");
    let (s, _) = app.post_json(&members, &doc, json!({"email": "x@a.test", "role": "staff"})).await;
    assert_eq!(s, 403, "a provider cannot add members");
    let (s, e) = app
        .post_json(&format!("/api/v1/orgs/{}/members", b.id), &admin, json!({"email": "spy@b.test", "role": "staff"}))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")), "another clinic is invisible");
    assert_eq!(app.get_json(&format!("/api/v1/orgs/{}", b.id), &admin).await.0, 404);
    assert_eq!(app.get_json(&format!("/api/v1/orgs/{}", a.id), &doc).await.0, 200);
    let (s, _) = app.post_json("/api/v1/orgs", &owner, json!({"name": "Mine", "kind": "clinic"})).await;
    assert_eq!(s, 403, "only platform support creates organizations");
    let (s, _) = app.post_json("/api/v1/platform-admins", &owner, json!({"email": "me2@a.test"})).await;
    assert_eq!(s, 403);
}

async fn password_reset_link_sets_a_new_password_and_ends_sessions(app: TestApp) {
    let a = app.org("Clinic A", OrgKind::Clinic).await;
    let b = app.org("Clinic B", OrgKind::Clinic).await;
    app.member(&a, "owner@a.test", Role::Owner).await;
    let admin = app.member(&a, "admin@a.test", Role::Admin).await;
    let doc = app.member(&a, "doc@a.test", Role::Provider).await;
    let other = app.member(&b, "doc@b.test", Role::Provider).await;
    let owner_t = app.token("staff", "owner@a.test").await;
    let admin_t = app.token("staff", "admin@a.test").await;
    let doc_t = app.token("staff", "doc@a.test").await;

    let (s, _) = app.post_json(&format!("/api/v1/accounts/{}/password-reset", other.id), &admin_t, json!({})).await;
    assert_eq!(s, 404, "not for another clinic's member");
    let owner_id = app.get_json("/api/v1/me", &owner_t).await.1["id"].as_str().unwrap().to_owned();
    let (s, e) = app.post_json(&format!("/api/v1/accounts/{owner_id}/password-reset"), &admin_t, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("owner_protected")), "an admin cannot take over the owner");
    let (s, _) = app.post_json(&format!("/api/v1/accounts/{}/password-reset", admin.id), &doc_t, json!({})).await;
    assert_eq!(s, 403, "a provider cannot reset anyone");
    let (s, sent) = app.post_json(&format!("/api/v1/accounts/{}/password-reset", doc.id), &admin_t, json!({})).await;
    assert_eq!((s, sent), (202, json!({"reset_emailed": true})), "the link goes to the member, not the admin");
    let mail = app.smtp.wait_for(1, std::time::Duration::from_secs(5)).await;
    let mail = mail.iter().find(|m| m.to == vec!["doc@a.test".to_owned()]).expect("reset email");
    assert_eq!(mail.subject().as_deref(), Some("Reset your Clinic A password"));
    let text = mail.text_body().unwrap();
    let url = text.split_whitespace().find(|w| w.contains("/reset/")).unwrap();
    let token = url.rsplit('/').next().unwrap();
    let new_pw = "a brand new passphrase here";
    let res = app
        .api()
        .post(app.url(&format!("/api/v1/password-links/{token}")))
        .json(&json!({"password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "weak_password");
    let res = app
        .api()
        .post(app.url(&format!("/api/v1/password-links/{token}")))
        .json(&json!({"password": new_pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_json("/api/v1/me", &doc_t).await.0, 401, "a reset ends every session");
    assert_eq!(app.api_login("staff", "doc@a.test", PASSWORD).await.status(), 401);
    assert_eq!(app.api_login("staff", "doc@a.test", new_pw).await.status(), 200);
    let kinds = app.audit_kinds().await;
    assert!(kinds.contains(&("password_reset_link_issued".into(), "success".into())));
    assert!(kinds.contains(&("password_reset".into(), "success".into())));
}
