//! Authentication at the upgrade: turns what a client presented — a JWT, or
//! nothing — into the [`Identity`] its connection speaks for, or a refusal
//! that the transport answers with HTTP 401 before any socket exists.
//!
//! [`Authenticator`] is transport-neutral: `/ws` hands it the token from
//! `?token=` or `Authorization: Bearer` ([`bearer_token`]), and any other
//! transport can hand it the token from its own handshake.
//!
//! Tokens are JWTs checked with one key the operator configures: an HMAC
//! secret (HS256/384/512) or a PEM public key (RS*, PS*, ES256/384, EdDSA).
//! Only the configured algorithm is accepted, so neither `alg: none` nor a
//! token signed with HMAC over the public key (the classic key-confusion
//! attack) gets through. `exp` and `sub` are required, `nbf` is honoured,
//! and clocks may differ by [`LEEWAY_SECS`].
//!
//! Claims: `sub` becomes the user id (so a user's connections share one
//! presence entry), `name` the display name (else the client's `?name=`,
//! else `sub`), `rooms`, when present, the only rooms the user may join,
//! and `role`, when `"moderator"`, lets the user edit, delete and pin any
//! message of those rooms (`"member"`, or no `role`, their own only).
//!
//! Nothing here logs or echoes a token or the secret: refusals carry a fixed
//! reason, never the library's error text (which can quote claim values),
//! and [`Secret`] prints as `[redacted]`.
//!
//! The operator's side, the HTTP API's [`ApiKey`], is here too: compared in
//! constant time, never printed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_protocol::{User, validate};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use chat_core::{Identity, Role, RoomAccess};

mod guest;
pub use guest::{GuestKeys, ShortSecret, new_secret};

/// Clock difference tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Longest `sub` accepted as a user id, in characters.
const MAX_SUBJECT_CHARS: usize = 256;

/// Who may connect, as configured.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The token key; `None`: the server takes no tokens.
    pub jwt: Option<JwtConfig>,
    /// Whether a connection without a token is let in as an anonymous user.
    pub allow_anonymous: bool,
}

impl Default for AuthConfig {
    /// Anonymous only, as the contract's default mode.
    fn default() -> Self {
        AuthConfig {
            jwt: None,
            allow_anonymous: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub key: JwtKey,
    /// The one algorithm accepted; `None`: the usual one for the key
    /// (HS256 for a secret, RS256 for RSA, ES256 or ES384 by the curve,
    /// EdDSA for Ed25519).
    pub algorithm: Option<Algorithm>,
    /// When set, tokens must carry this `aud`. When not, tokens carrying
    /// any `aud` are refused: they were meant for someone else.
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
}

/// Where the key that checks signatures comes from.
#[derive(Debug, Clone)]
pub enum JwtKey {
    Secret(Secret),
    /// A file holding the secret (one trailing newline is ignored), so it
    /// need not sit in the environment or the process's arguments.
    SecretFile(PathBuf),
    /// A PEM `PUBLIC KEY` (or `RSA PUBLIC KEY`) file.
    PublicKey(PathBuf),
}

/// A shared secret; never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Why the configured key cannot be used; the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a PEM public key (RSA, EC P-256/P-384 or Ed25519); \
         for a certificate, extract its key with `openssl x509 -pubkey -noout`"
    )]
    NotAPublicKey { path: PathBuf },
    #[error("the JWT secret must be at least {min} bytes for {algorithm:?} (RFC 7518 §3.2)")]
    ShortSecret { min: usize, algorithm: Algorithm },
    #[error("algorithm {algorithm:?} does not fit a {family:?} key")]
    AlgorithmMismatch {
        algorithm: Algorithm,
        family: AlgorithmFamily,
    },
    #[error("cannot tell the curve of the EC key in {path}; set the JWT algorithm")]
    UnknownCurve { path: PathBuf },
}

/// Why a connection is refused: answered with 401 and this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a token is required: pass ?token=<jwt> or Authorization: Bearer <jwt>")]
    Missing,
    #[error("this server accepts no tokens")]
    NotAccepted,
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm not accepted")]
    Algorithm,
    #[error("token signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    #[error("token claim `{0}` is not valid")]
    BadClaim(&'static str),
    #[error("guest credential not accepted: connect without it to be a new guest")]
    Guest,
}

impl IntoResponse for Refused {
    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750) and the reason as
    /// plain text.
    fn into_response(self) -> Response {
        let mut response = (StatusCode::UNAUTHORIZED, self.to_string()).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
/// Other schemes are not ours (a proxy's `Basic`, say) and are ignored.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::AUTHORIZATION).iter().find_map(|v| {
        let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    })
}

/// Checks tokens; built once at startup and shared by every transport.
pub struct Authenticator {
    jwt: Option<Verifier>,
    allow_anonymous: bool,
    /// Set once the server has its guest secret: guests then get a
    /// credential, and may come back with it.
    guests: Option<GuestKeys>,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// The claims we read; `exp`, `nbf`, `aud` and `iss` are checked by
/// `jsonwebtoken` itself. `sub` is optional here only so that a token
/// without one is refused as such rather than as malformed.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    name: Option<String>,
    rooms: Option<Vec<String>>,
    role: Option<String>,
}

impl Authenticator {
    /// Loads the key `config` names.
    pub fn new(config: &AuthConfig) -> Result<Authenticator, SetupError> {
        let jwt = config.jwt.as_ref().map(Verifier::new).transpose()?;
        Ok(Authenticator {
            jwt,
            allow_anonymous: config.allow_anonymous,
            guests: None,
        })
    }

    /// Whether guests (connections without a token) are let in: only
    /// then is a guest secret needed.
    pub fn allows_guests(&self) -> bool {
        self.allow_anonymous
    }

    /// Signs and checks guest credentials with `keys` from now on.
    pub fn set_guest_keys(&mut self, keys: GuestKeys) {
        self.guests = Some(keys);
    }

    /// Whether connections need a token.
    pub fn requires_token(&self) -> bool {
        !self.allow_anonymous
    }

    /// Who a connection is: the holder of `token`; else, when anonymous
    /// connections are allowed, the guest `guest` names (a credential a
    /// `welcome` gave) or a new guest, called `name` (already validated by
    /// the transport). A token wins over a credential.
    pub fn authenticate(
        &self,
        token: Option<&str>,
        guest: Option<&str>,
        name: Option<String>,
    ) -> Result<Identity, Refused> {
        match (token, &self.jwt) {
            (Some(token), Some(verifier)) => verifier.verify(token, name),
            (Some(_), None) => Err(Refused::NotAccepted),
            (None, _) if self.allow_anonymous => self.guest(guest, name),
            (None, _) => Err(Refused::Missing),
        }
    }

    fn guest(&self, credential: Option<&str>, name: Option<String>) -> Result<Identity, Refused> {
        let Some(keys) = &self.guests else {
            // No secret (a test's bare authenticator): guests come and go.
            return match credential {
                Some(_) => Err(Refused::Guest),
                None => Ok(Identity::anonymous(None, name)),
            };
        };
        let id = credential.map(|c| keys.check(c)).transpose()?;
        let mut identity = Identity::anonymous(id, name);
        identity.guest_token = Some(keys.issue(&identity.user.id));
        Ok(identity)
    }
}

impl Verifier {
    fn new(config: &JwtConfig) -> Result<Verifier, SetupError> {
        let (key, algorithm) = match &config.key {
            JwtKey::Secret(secret) => hmac_key(&secret.0, config.algorithm)?,
            JwtKey::SecretFile(path) => {
                let mut bytes = read(path)?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                hmac_key(&bytes, config.algorithm)?
            }
            JwtKey::PublicKey(path) => public_key(path, config.algorithm)?,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(audience) = &config.audience {
            validation.set_audience(&[audience]);
            validation.required_spec_claims.insert("aud".into());
        }
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        Ok(Verifier { key, validation })
    }

    fn verify(&self, token: &str, name: Option<String>) -> Result<Identity, Refused> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;
        let id = claims.sub.ok_or(Refused::MissingClaim("sub"))?;
        if id.is_empty()
            || id.chars().count() > MAX_SUBJECT_CHARS
            // It is the display name when the token has no `name`.
            || validate::hidden_character(&id).is_some()
        {
            return Err(Refused::BadClaim("sub"));
        }
        let name = match claims.name {
            Some(name) => {
                validate::display_name(&name).map_err(|_| Refused::BadClaim("name"))?;
                name
            }
            None => name.unwrap_or_else(|| id.clone()),
        };
        let rooms = match claims.rooms {
            Some(patterns) => RoomAccess::from_patterns(&patterns),
            None => RoomAccess::Any,
        };
        let role = match claims.role.as_deref() {
            None | Some("member") => Role::Member,
            Some("moderator") => Role::Moderator,
            Some(_) => return Err(Refused::BadClaim("role")),
        };
        Ok(Identity {
            user: User { id, name },
            rooms,
            role,
            guest_token: None,
        })
    }
}

/// The refusal for a `jsonwebtoken` error, without its text.
pub(crate) fn refusal(kind: &ErrorKind) -> Refused {
    match kind {
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Refused::Algorithm,
        ErrorKind::InvalidSignature => Refused::Signature,
        ErrorKind::ExpiredSignature => Refused::Expired,
        ErrorKind::ImmatureSignature => Refused::NotYetValid,
        ErrorKind::MissingRequiredClaim(claim) => Refused::MissingClaim(claim_name(claim)),
        ErrorKind::InvalidClaimFormat(claim) => Refused::BadClaim(claim_name(claim)),
        ErrorKind::InvalidAudience => Refused::BadClaim("aud"),
        ErrorKind::InvalidIssuer => Refused::BadClaim("iss"),
        ErrorKind::InvalidSubject => Refused::BadClaim("sub"),
        _ => Refused::Malformed,
    }
}

/// The registered claims `jsonwebtoken` names in its errors.
fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "aud" => "aud",
        "iss" => "iss",
        "sub" => "sub",
        _ => "?",
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn hmac_key(
    secret: &[u8],
    algorithm: Option<Algorithm>,
) -> Result<(DecodingKey, Algorithm), SetupError> {
    let key = DecodingKey::from_secret(secret);
    let algorithm = fitting(algorithm.unwrap_or(Algorithm::HS256), key.family())?;
    // RFC 7518 §3.2: a key at least as long as the hash output.
    let min = match algorithm {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    };
    if secret.len() < min {
        return Err(SetupError::ShortSecret { min, algorithm });
    }
    Ok((key, algorithm))
}

fn public_key(
    path: &Path,
    algorithm: Option<Algorithm>,
) -> Result<(DecodingKey, Algorithm), SetupError> {
    let pem = read(path)?;
    let not_a_key = || SetupError::NotAPublicKey {
        path: path.to_owned(),
    };
    // The PEM reader would take a certificate's first bit string for a key.
    if pem
        .trim_ascii_start()
        .starts_with(b"-----BEGIN CERTIFICATE")
    {
        return Err(not_a_key());
    }
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .map_err(|_| not_a_key())?;
    let algorithm = match (algorithm, key.family()) {
        (Some(algorithm), family) => fitting(algorithm, family)?,
        (None, AlgorithmFamily::Rsa) => Algorithm::RS256,
        (None, AlgorithmFamily::Ed) => Algorithm::EdDSA,
        // An uncompressed point: 1 + 2 × the coordinate size.
        (None, _) => match key.kind() {
            DecodingKeyKind::SecretOrDer(point) if point.len() == 65 => Algorithm::ES256,
            DecodingKeyKind::SecretOrDer(point) if point.len() == 97 => Algorithm::ES384,
            _ => {
                return Err(SetupError::UnknownCurve {
                    path: path.to_owned(),
                });
            }
        },
    };
    Ok((key, algorithm))
}

fn fitting(algorithm: Algorithm, family: AlgorithmFamily) -> Result<Algorithm, SetupError> {
    if algorithm.family() == family {
        Ok(algorithm)
    } else {
        Err(SetupError::AlgorithmMismatch { algorithm, family })
    }
}

/// Shortest API key accepted at start-up: a guessable key is no key.
pub const MIN_KEY_BYTES: usize = 16;

/// The operator's HTTP API key (`--api-key`). Never printed: `Debug`
/// redacts it.
#[derive(Clone, Deserialize)]
#[serde(from = "String")]
pub struct ApiKey(Vec<u8>);

impl ApiKey {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time in the key's content (lengths may differ quickly).
    pub(crate) fn matches(&self, offered: &[u8]) -> bool {
        self.0.ct_eq(offered).into()
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> ApiKey {
        ApiKey(key.into_bytes())
    }
}

impl FromStr for ApiKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ApiKey(s.as_bytes().to_vec()))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    // A throwaway 2048-bit RSA key pair, for these tests only.
    const RSA_PRIVATE: &str = include_str!("../tests/fixtures/jwt-rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("../tests/fixtures/jwt-rsa-public.pem");

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs256() -> Authenticator {
        Authenticator::new(&AuthConfig {
            jwt: Some(JwtConfig {
                key: JwtKey::Secret(Secret::new(SECRET)),
                algorithm: None,
                audience: None,
                issuer: None,
            }),
            allow_anonymous: false,
        })
        .expect("valid HS256 setup")
    }

    fn sign(algorithm: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(algorithm), claims, key).expect("sign")
    }

    fn hs(claims: Value) -> String {
        sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), &claims)
    }

    #[test]
    fn a_valid_token_names_the_user_and_their_rooms() {
        let auth = hs256();
        let token = hs(json!({"sub": "42", "name": "Alice", "exp": now() + 60,
                               "rooms": ["general", "team-*"]}));
        let identity = auth.authenticate(Some(&token), None, Some("ignored".into()));
        let identity = identity.expect("accepted");
        assert_eq!(
            identity.user,
            User {
                id: "42".into(),
                name: "Alice".into()
            }
        );
        assert!(identity.rooms.allows("team-red"));
        assert!(!identity.rooms.allows("random"));
    }

    #[test]
    fn without_a_name_claim_the_query_name_then_the_subject_is_used() {
        let auth = hs256();
        let token = hs(json!({"sub": "42", "exp": now() + 60}));
        let named = auth
            .authenticate(Some(&token), None, Some("al".into()))
            .unwrap();
        assert_eq!(named.user.name, "al");
        assert_eq!(named.rooms, RoomAccess::Any);
        assert_eq!(
            auth.authenticate(Some(&token), None, None)
                .unwrap()
                .user
                .name,
            "42"
        );
    }

    #[test]
    fn expiry_is_checked_with_a_small_leeway() {
        let auth = hs256();
        let just = hs(json!({"sub": "1", "exp": now() - 5}));
        assert!(auth.authenticate(Some(&just), None, None).is_ok());
        let long_ago = hs(json!({"sub": "1", "exp": now() - 2 * LEEWAY_SECS}));
        assert_eq!(
            auth.authenticate(Some(&long_ago), None, None),
            Err(Refused::Expired)
        );
        let later = hs(json!({"sub": "1", "exp": now() + 600, "nbf": now() + 300}));
        assert_eq!(
            auth.authenticate(Some(&later), None, None),
            Err(Refused::NotYetValid)
        );
    }

    #[test]
    fn exp_and_sub_are_required_and_must_be_sane() {
        let auth = hs256();
        let check = |claims: Value| auth.authenticate(Some(&hs(claims)), None, None);
        assert_eq!(
            check(json!({"sub": "1"})),
            Err(Refused::MissingClaim("exp"))
        );
        assert_eq!(
            check(json!({"exp": now() + 60})),
            Err(Refused::MissingClaim("sub"))
        );
        assert_eq!(
            check(json!({"sub": "", "exp": now() + 60})),
            Err(Refused::BadClaim("sub"))
        );
        // Not a number: as good as absent.
        assert_eq!(
            check(json!({"sub": "1", "exp": "tomorrow"})),
            Err(Refused::MissingClaim("exp"))
        );
        assert_eq!(
            check(json!({"sub": "1", "name": " padded ", "exp": now() + 60})),
            Err(Refused::BadClaim("name"))
        );
        // The login service's word is refused, not trimmed into a name
        // it did not give: a bidi override or zero-width character in
        // `name`, or in `sub` (the name when `name` is absent).
        assert_eq!(
            check(json!({"sub": "1", "name": "al\u{202e}ecila", "exp": now() + 60})),
            Err(Refused::BadClaim("name"))
        );
        assert_eq!(
            check(json!({"sub": "ad\u{200b}min", "exp": now() + 60})),
            Err(Refused::BadClaim("sub"))
        );
        assert_eq!(
            check(json!({"sub": "1", "rooms": "general", "exp": now() + 60})),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn wrong_keys_algorithms_and_none_are_refused() {
        let auth = hs256();
        let claims = json!({"sub": "1", "exp": now() + 60});
        let other_key = EncodingKey::from_secret(b"another secret, also 32 bytes long");
        assert_eq!(
            auth.authenticate(
                Some(&sign(Algorithm::HS256, &other_key, &claims)),
                None,
                None
            ),
            Err(Refused::Signature)
        );
        let hs512 = sign(Algorithm::HS512, &EncodingKey::from_secret(SECRET), &claims);
        assert_eq!(
            auth.authenticate(Some(&hs512), None, None),
            Err(Refused::Algorithm)
        );
        // {"alg":"none","typ":"JWT"}, the real claims, no signature.
        let valid = hs(claims);
        let payload = valid.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(auth.authenticate(Some(&none), None, None).is_err());
        for junk in ["", "abc", "a.b.c", "..", &valid[..valid.len() - 3]] {
            assert!(
                auth.authenticate(Some(junk), None, None).is_err(),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn anonymous_connections_follow_the_setting() {
        assert_eq!(
            hs256().authenticate(None, None, None),
            Err(Refused::Missing)
        );
        let open = Authenticator::new(&AuthConfig::default()).unwrap();
        let guest = open.authenticate(None, None, Some("bob".into())).unwrap();
        assert_eq!(guest.user.name, "bob");
        assert_eq!(
            open.authenticate(Some("a.b.c"), None, None),
            Err(Refused::NotAccepted)
        );
    }

    #[test]
    fn rs256_with_a_public_key_refuses_hmac_over_that_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("public.pem");
        std::fs::write(&path, RSA_PUBLIC).unwrap();
        let auth = Authenticator::new(&AuthConfig {
            jwt: Some(JwtConfig {
                key: JwtKey::PublicKey(path),
                algorithm: None,
                audience: Some("chat".into()),
                issuer: None,
            }),
            allow_anonymous: false,
        })
        .expect("valid RS256 setup");
        let private = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        let claims = json!({"sub": "7", "aud": "chat", "exp": now() + 60});
        let token = sign(Algorithm::RS256, &private, &claims);
        assert_eq!(
            auth.authenticate(Some(&token), None, None).unwrap().user.id,
            "7"
        );
        let elsewhere = json!({"sub": "7", "aud": "mail", "exp": now() + 60});
        assert_eq!(
            auth.authenticate(
                Some(&sign(Algorithm::RS256, &private, &elsewhere)),
                None,
                None
            ),
            Err(Refused::BadClaim("aud"))
        );
        let confused = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
            &claims,
        );
        assert_eq!(
            auth.authenticate(Some(&confused), None, None),
            Err(Refused::Algorithm)
        );
    }

    #[test]
    fn keys_that_cannot_work_stop_the_start() {
        let setup = |key: JwtKey, algorithm: Option<Algorithm>| {
            Authenticator::new(&AuthConfig {
                jwt: Some(JwtConfig {
                    key,
                    algorithm,
                    audience: None,
                    issuer: None,
                }),
                allow_anonymous: false,
            })
            .map(|_| ())
        };
        let short = setup(JwtKey::Secret(Secret::new("short")), None).unwrap_err();
        assert!(short.to_string().contains("at least 32 bytes"), "{short}");
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public.pem");
        std::fs::write(&public, RSA_PUBLIC).unwrap();
        let mismatch = setup(JwtKey::PublicKey(public), Some(Algorithm::ES256)).unwrap_err();
        assert!(matches!(mismatch, SetupError::AlgorithmMismatch { .. }));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        let junk = setup(JwtKey::PublicKey(junk), None).unwrap_err();
        assert!(matches!(junk, SetupError::NotAPublicKey { .. }));
        let file = dir.path().join("secret");
        std::fs::write(&file, [SECRET, b"\n"].concat()).unwrap();
        assert!(setup(JwtKey::SecretFile(file), None).is_ok());
    }

    #[test]
    fn secrets_never_print_and_bearer_headers_are_read() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer a.b.c"),
        );
        assert_eq!(bearer_token(&headers), Some("a.b.c"));
        let refused = Refused::Expired.into_response();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
