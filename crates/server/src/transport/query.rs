//! `?name=`, `?token=` and `?guest=` of a handshake URL, decoded strictly.
//!
//! axum's `Query` (serde_urlencoded) decodes a percent-escape that is not
//! UTF-8 lossily: `?name=%FF%FE` became the name `"\u{FFFD}\u{FFFD}"`
//! rather than a refusal, a name nobody typed. Here a query any of whose
//! keys or values does not decode to UTF-8 is refused whole, and so is a
//! `name` or `token` given twice (which one would count?). Decoding is
//! otherwise the form encoding `Query` reads: pairs split at `&`, key from
//! value at the first `=`, `+` for a space.

use percent_encoding::percent_decode_str;

/// What a handshake's query says about who connects. Not `Debug`: it may
/// hold a token, which must never reach a log.
#[derive(Default)]
pub struct Credentials {
    pub name: Option<String>,
    pub token: Option<String>,
    /// A guest credential from an earlier `welcome`.
    pub guest: Option<String>,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadQuery {
    #[error("the URL's query is not valid UTF-8 once percent-decoded")]
    NotUtf8,
    #[error("`{0}` appears twice in the URL's query")]
    Repeated(&'static str),
}

/// Reads `name`, `token` and `guest` from a URL's query (`None`: no query);
/// other keys are checked for UTF-8 and ignored.
pub fn credentials(query: Option<&str>) -> Result<Credentials, BadQuery> {
    let mut found = Credentials::default();
    for pair in query.unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        let (slot, key) = match decode(key)?.as_str() {
            "name" => (&mut found.name, "name"),
            "token" => (&mut found.token, "token"),
            "guest" => (&mut found.guest, "guest"),
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(BadQuery::Repeated(key));
        }
    }
    Ok(found)
}

/// One key or value: `+` is a space, `%XX` a byte, and the bytes must be
/// UTF-8.
fn decode(component: &str) -> Result<String, BadQuery> {
    let spaced = component.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| BadQuery::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(query: &str) -> Result<(Option<String>, Option<String>), BadQuery> {
        credentials(Some(query)).map(|c| (c.name, c.token))
    }

    #[test]
    fn decodes_names_and_tokens_as_forms_do() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            read("name=alice&token=a.b.c"),
            Ok((some("alice"), some("a.b.c")))
        );
        assert_eq!(read("name=a+b%20c%2B"), Ok((some("a b c+"), None)));
        assert_eq!(
            read("name=%D7%A9%D7%9C%D7%95%D7%9D"),
            Ok((some("שלום"), None))
        );
        assert_eq!(read("EIO=4&transport=websocket&&t=x"), Ok((None, None)));
        assert_eq!(read("name=&token"), Ok((some(""), some(""))));
        assert_eq!(read("na%6De=x=y"), Ok((some("x=y"), None)));
        assert!(credentials(None).is_ok_and(|c| c.name.is_none() && c.token.is_none()));
    }

    #[test]
    fn refuses_what_is_not_utf8_and_repeated_credentials() {
        for query in [
            "name=%FF%FE",
            "name=al%C0%AFice",
            "name=%ED%A0%80",
            "name=ok&token=%E2%82",
            "name=ok&%FF=1",
            "EIO=4&t=%80",
        ] {
            assert_eq!(read(query).err(), Some(BadQuery::NotUtf8), "{query}");
        }
        assert_eq!(
            read("name=a&name=b").err(),
            Some(BadQuery::Repeated("name"))
        );
        assert_eq!(
            read("token=a&token=a").err(),
            Some(BadQuery::Repeated("token"))
        );
    }
}
