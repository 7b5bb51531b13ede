//! Guest credentials: what makes a person without a token one user across
//! tabs, reloads and reconnects.
//!
//! A guest gets a credential in `welcome` and presents it again with
//! `?guest=` (or Socket.IO's `auth: {guest}`): the connection is then the
//! same user, with the same id. The credential is a JWT (HS256) the server
//! signs with its own secret, [`GuestKeys`], never the operator's token
//! key, and marked with its own audience, so a guest credential is never
//! taken for a user's token, nor a token for a credential. It says who the
//! guest is (`sub`) and nothing else: the display name stays the client's
//! choice, as for any anonymous connection. A fresh one, valid for
//! [`GUEST_VALIDITY`], comes with every `welcome`, so a guest who comes
//! back within that time stays themselves indefinitely.
//!
//! The secret is the operator's `--guest-secret`, else one the server
//! creates on first start and keeps (in the data directory, or in
//! PostgreSQL where the nodes of a cluster share it: see `server.rs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{LEEWAY_SECS, Refused, Secret, refusal};

/// How long a guest credential is good for.
pub const GUEST_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The `aud` of every guest credential.
const AUDIENCE: &str = "chat-guest";

/// Shortest secret accepted: as long as HS256's output (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Signs and checks guest credentials.
pub struct GuestKeys {
    signing: EncodingKey,
    checking: DecodingKey,
    validation: Validation,
}

#[derive(Serialize, Deserialize)]
struct GuestClaims {
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// The guest secret is too short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the guest secret must be at least {MIN_SECRET_BYTES} bytes")]
pub struct ShortSecret;

impl GuestKeys {
    pub fn new(secret: &Secret) -> Result<GuestKeys, ShortSecret> {
        if secret.0.len() < MIN_SECRET_BYTES {
            return Err(ShortSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Ok(GuestKeys {
            signing: EncodingKey::from_secret(&secret.0),
            checking: DecodingKey::from_secret(&secret.0),
            validation,
        })
    }

    /// A credential for guest `id`.
    pub fn issue(&self, id: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = GuestClaims {
            sub: id.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + GUEST_VALIDITY.as_secs(),
        };
        // HMAC signing of a small struct of strings and integers does not
        // fail; should it, the guest simply gets no credential to keep.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing)
            .unwrap_or_default()
    }

    /// The guest id a credential stands for, if this server signed it and
    /// it has not expired.
    pub fn check(&self, credential: &str) -> Result<String, Refused> {
        let claims =
            jsonwebtoken::decode::<GuestClaims>(credential, &self.checking, &self.validation)
                .map_err(|e| match refusal(e.kind()) {
                    Refused::Expired => Refused::Expired,
                    _ => Refused::Guest,
                })?
                .claims;
        if !claims.sub.starts_with("u_") {
            return Err(Refused::Guest);
        }
        Ok(claims.sub)
    }
}

/// A new random secret, as text, for a server that was given none.
pub fn new_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> GuestKeys {
        GuestKeys::new(&Secret::new(secret)).unwrap()
    }

    #[test]
    fn a_credential_names_its_guest_to_the_server_that_signed_it() {
        let server = keys(&new_secret());
        let credential = server.issue("u_01ABC");
        assert_eq!(server.check(&credential).unwrap(), "u_01ABC");
        // Another server's secret, a changed character, nonsense: refused.
        assert_eq!(keys(&new_secret()).check(&credential), Err(Refused::Guest));
        let mut tampered = credential.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(server.check(&tampered).is_err());
        assert_eq!(server.check("not a credential"), Err(Refused::Guest));
    }

    #[test]
    fn a_token_for_users_is_no_credential() {
        let secret = new_secret();
        let server = keys(&secret);
        // Signed with the same bytes, but without the guest audience.
        let claims = serde_json::json!({"sub": "u_1", "exp": u64::MAX / 2});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(server.check(&token), Err(Refused::Guest));
    }

    #[test]
    fn secrets_are_long_and_random() {
        assert_ne!(new_secret(), new_secret());
        assert_eq!(new_secret().len(), 64);
        assert!(GuestKeys::new(&Secret::new("short")).is_err());
    }
}
