//! The provider's signing keys: made on first use (one RSA key for RS256, the spec's
//! default, and one P-256 key for ES256), sealed by the keyring in the store,
//! published as a JWKS, and rotated by `clinic-auth oidc keys rotate`. A retired key
//! stops signing at once and stays published until every token it signed has expired.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clinic_auth_core::audit::Event;
use clinic_auth_core::oidc::KEY_PUBLISH_AFTER_RETIRE_SECS;
use clinic_auth_store::{ClientInfo, SealedSecret, SigningKey};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::{App, Error, audit_event};

/// The algorithms keys are made for, in the order they are made.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        _ => "RS256",
    }
}

pub fn parse_alg(s: &str) -> Option<Algorithm> {
    match s {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    }
}

fn seal_context(kid: &str) -> String {
    format!("oidc-signing-key:{kid}")
}

/// `VERSION:NONCE:CIPHERTEXT`, base64: the sealed private key as the store keeps it.
fn sealed_to_text(s: &SealedSecret) -> String {
    format!("{}:{}:{}", s.key_version, STANDARD.encode(&s.nonce), STANDARD.encode(&s.ciphertext))
}

fn sealed_from_text(t: &str) -> Result<SealedSecret, Error> {
    let bad = || Error::internal("a stored signing key is malformed");
    let mut parts = t.splitn(3, ':');
    let version = parts.next().and_then(|v| v.parse::<i64>().ok()).ok_or_else(bad)?;
    let nonce = parts.next().and_then(|v| STANDARD.decode(v).ok()).ok_or_else(bad)?;
    let ciphertext = parts.next().and_then(|v| STANDARD.decode(v).ok()).ok_or_else(bad)?;
    Ok(SealedSecret { ciphertext, nonce, key_version: version })
}

/// A new private key in the DER form jsonwebtoken signs with: PKCS#1 for RSA,
/// PKCS#8 for P-256.
fn generate_der(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, Error> {
    use p256::pkcs8::EncodePrivateKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    // The operating system's generator (getrandom).
    let mut rng = rsa::rand_core::OsRng;
    match alg {
        Algorithm::ES256 => {
            let key = p256::SecretKey::random(&mut rng);
            let der = key.to_pkcs8_der().map_err(|_| Error::internal("encoding a new P-256 key failed"))?;
            Ok(Zeroizing::new(der.as_bytes().to_vec()))
        }
        _ => {
            let key =
                rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|_| Error::internal("making an RSA key failed"))?;
            let der = key.to_pkcs1_der().map_err(|_| Error::internal("encoding a new RSA key failed"))?;
            Ok(Zeroizing::new(der.as_bytes().to_vec()))
        }
    }
}

fn encoding_key(alg: Algorithm, der: &[u8]) -> EncodingKey {
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_der(der),
        _ => EncodingKey::from_rsa_der(der),
    }
}

/// Makes a key for `alg`: its record (private part sealed) and its public JWK.
fn make_key(state: &App, alg: Algorithm) -> Result<SigningKey, Error> {
    let kid = uuid::Uuid::new_v4().simple().to_string();
    let der = generate_der(alg)?;
    let mut jwk = Jwk::from_encoding_key(&encoding_key(alg, &der), alg)
        .map_err(|_| Error::internal("deriving a public key failed"))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let public_jwk = serde_json::to_string(&jwk).map_err(|_| Error::internal("encoding a JWK failed"))?;
    let sealed = state.sealer.seal(&der, &seal_context(&kid))?;
    Ok(SigningKey {
        kid,
        alg: alg_name(alg).to_owned(),
        private_sealed: sealed_to_text(&sealed),
        public_jwk,
        created_at: state.now(),
        retired_at: None,
        publish_until: None,
    })
}

/// Makes the first keys when there are none for an algorithm (first use).
async fn ensure_keys(state: &App) -> Result<Vec<SigningKey>, Error> {
    let mut keys = state.store.list_signing_keys(state.now()).await?;
    let mut added = false;
    for alg in ALGORITHMS {
        if !keys.iter().any(|k| k.retired_at.is_none() && k.alg == alg_name(alg)) {
            let key = make_key(state, alg)?;
            let event = audit_event(
                state,
                Event::SigningKeyAdded { kid: &key.kid, alg: &key.alg, rotated: false },
                &ClientInfo { ip: "local".into(), user_agent: "clinic-auth".into() },
            );
            state.store.add_signing_key(&key, None, Some(&event)).await?;
            added = true;
        }
    }
    if added {
        keys = state.store.list_signing_keys(state.now()).await?;
    }
    Ok(keys)
}

/// Replaces every signing key with a new one of the same algorithm, in one
/// transaction; the old public keys stay in the JWKS until tokens they signed expire.
/// The new keys' ids.
pub async fn rotate(state: &App, by: &crate::By) -> Result<Vec<String>, Error> {
    let now = state.now();
    let retire = (now, now.plus_secs(KEY_PUBLISH_AFTER_RETIRE_SECS));
    let mut kids = Vec::new();
    for (i, alg) in ALGORITHMS.into_iter().enumerate() {
        let key = make_key(state, alg)?;
        let event =
            audit_event(state, Event::SigningKeyAdded { kid: &key.kid, alg: &key.alg, rotated: true }, &by.client);
        // The first insert retires every current key; the second adds beside it.
        state.store.add_signing_key(&key, (i == 0).then_some(retire), Some(&event)).await?;
        kids.push(key.kid);
    }
    Ok(kids)
}

/// The JWKS: every published key.
pub async fn jwks(state: &App) -> Result<JwkSet, Error> {
    let keys = ensure_keys(state).await?;
    let keys = keys
        .iter()
        .map(|k| serde_json::from_str::<Jwk>(&k.public_jwk))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::internal("a stored public key is malformed"))?;
    Ok(JwkSet { keys })
}

/// Signs `claims` with the current key for `alg`.
pub async fn sign<T: Serialize>(state: &App, alg: Algorithm, typ: Option<&str>, claims: &T) -> Result<String, Error> {
    let keys = ensure_keys(state).await?;
    let key = keys
        .iter()
        .find(|k| k.retired_at.is_none() && k.alg == alg_name(alg))
        .ok_or_else(|| Error::internal("no current signing key"))?;
    let der = state.sealer.open(&sealed_from_text(&key.private_sealed)?, &seal_context(&key.kid))?;
    let mut header = Header::new(alg);
    header.kid = Some(key.kid.clone());
    header.typ = typ.map(str::to_owned).or(header.typ);
    jsonwebtoken::encode(&header, claims, &encoding_key(alg, &der)).map_err(|_| Error::internal("signing failed"))
}

/// The claims of a token this provider signed with a published key, checked for the
/// signature only (an `id_token_hint` may have expired). `None` for anything else:
/// another signer, an unknown `kid`, `alg: none` or HMAC, a bad signature.
pub async fn verify_ours(state: &App, token: &str) -> Result<Option<serde_json::Value>, Error> {
    let Ok(header) = jsonwebtoken::decode_header(token) else { return Ok(None) };
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Ok(None);
    }
    let keys = state.store.list_signing_keys(state.now()).await?;
    let Some(key) = keys.iter().find(|k| Some(&k.kid) == header.kid.as_ref() && parse_alg(&k.alg) == Some(header.alg))
    else {
        return Ok(None);
    };
    let Ok(jwk) = serde_json::from_str::<Jwk>(&key.public_jwk) else { return Ok(None) };
    let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { return Ok(None) };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[super::issuer(state)]);
    Ok(jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation).ok().map(|d| d.claims))
}

/// Whether the keyring opens what the database sealed: the newest signing key's
/// private part, opened and dropped. `Some(kid)` when one opened, `None` when nothing
/// is sealed yet (a new database); an error when the keyring is not the one that
/// sealed it (a restored backup with another key, a wrong key file).
pub async fn keyring_opens_a_sealed_key(state: &App) -> Result<Option<String>, Error> {
    let keys = state.store.list_signing_keys(state.now()).await?;
    let Some(key) = keys.iter().max_by_key(|k| k.created_at.0) else { return Ok(None) };
    let sealed = sealed_from_text(&key.private_sealed)?;
    state.sealer.open(&sealed, &seal_context(&key.kid)).map_err(|_| {
        Error::internal(format!("the encryption keyring cannot open signing key {} sealed in the database", key.kid))
    })?;
    Ok(Some(key.kid.clone()))
}
