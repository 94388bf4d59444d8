//! The bearer token every Flight SQL call must carry
//! (`authorization: Bearer TOKEN`, as ADBC's `adbc.flight.sql.authorization_header`
//! and the JDBC driver's `token=` send it). The token is never printed: its
//! `Debug` is redacted and refusals do not echo what a client sent.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tonic::{Request, Status};

/// Shortest token accepted: a guessable token on a shared endpoint is no
/// authentication.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// A token as given: printable ASCII without spaces (it travels in an
    /// HTTP/2 header), at least `MIN_TOKEN_LEN` characters.
    pub fn new(token: &str) -> Result<Self> {
        let t = token.trim();
        if t.len() < MIN_TOKEN_LEN {
            bail!(
                "the bearer token has {} characters; at least {MIN_TOKEN_LEN} are needed (e.g. `openssl rand -hex 32`)",
                t.chars().count()
            );
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the bearer token must be printable ASCII without spaces (it is sent in an HTTP header)");
        }
        Ok(Self(t.into()))
    }

    /// The token from `--token-file` (its first line), else from the
    /// environment variable `env_var`.
    pub fn load(file: Option<&Path>, env_var: &str) -> Result<Self> {
        match file {
            Some(f) => {
                let s = std::fs::read_to_string(f)
                    .with_context(|| format!("reading the token file {}", f.display()))?;
                Self::new(s.lines().next().unwrap_or(""))
                    .with_context(|| format!("in the token file {}", f.display()))
            }
            None => match std::env::var(env_var) {
                Ok(s) => Self::new(&s).with_context(|| format!("in ${env_var}")),
                Err(_) => bail!(
                    "no bearer token: give --token-file FILE or set {env_var}; every client must send it"
                ),
            },
        }
    }

    pub fn interceptor(&self) -> BearerAuth {
        BearerAuth {
            expected: self.0.clone(),
        }
    }
}

/// tonic interceptor checking the `authorization` header of every call.
#[derive(Clone)]
pub struct BearerAuth {
    expected: Arc<str>,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(value) = req.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "no bearer token: send the header `authorization: Bearer TOKEN`",
            ));
        };
        let given = value.as_bytes();
        let ok = given.len() > 7
            && given[..7].eq_ignore_ascii_case(b"bearer ")
            && constant_time_eq(&given[7..], self.expected.as_bytes());
        if ok {
            Ok(req)
        } else {
            Err(Status::unauthenticated("wrong bearer token"))
        }
    }
}

/// Equality whose time does not depend on where the first difference is
/// (a timing side channel would let a client guess the token byte by
/// byte). A dozen lines do not justify a dependency.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn call(auth: &mut BearerAuth, header: Option<&str>) -> Result<(), Status> {
        let mut req = Request::new(());
        if let Some(h) = header {
            req.metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        auth.call(req).map(|_| ())
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let token = Token::new("0123456789abcdef-token\n").unwrap();
        assert_eq!(format!("{token:?}"), "Token(***)");
        let mut auth = token.interceptor();
        call(&mut auth, Some("Bearer 0123456789abcdef-token")).unwrap();
        call(&mut auth, Some("bearer 0123456789abcdef-token")).unwrap();
        for (h, why) in [
            (None, "no bearer token"),
            (Some("Bearer 0123456789abcdef-tokeN"), "wrong bearer token"),
            (Some("Bearer 0123456789abcdef-toke"), "wrong bearer token"),
            (Some("Basic 0123456789abcdef-token"), "wrong bearer token"),
            (Some("Bearer "), "wrong bearer token"),
        ] {
            let e = call(&mut auth, h).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert!(e.message().contains(why), "{h:?}: {}", e.message());
            assert!(
                !e.message().contains("0123456789"),
                "the refusal echoes the token"
            );
        }
    }

    #[test]
    fn weak_or_unprintable_tokens_are_refused_without_echoing_them() {
        for t in [
            "",
            "short",
            "with a space inside!",
            "tab\tinside-0123456789",
        ] {
            let e = Token::new(t).unwrap_err().to_string();
            assert!(e.contains("token"), "{e}");
            if t.len() > 3 {
                assert!(!e.contains(t), "{e}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "abcdefghijklmnopqrstuvwxyz\nsecond line\n").unwrap();
        Token::load(Some(&f), "DAJIA_TEST_UNSET_TOKEN").unwrap();
        let e = Token::load(Some(&dir.path().join("none")), "X").unwrap_err();
        assert!(format!("{e:#}").contains("reading the token file"));
        let e = Token::load(None, "DAJIA_TEST_UNSET_TOKEN").unwrap_err();
        assert!(e.to_string().contains("--token-file"), "{e}");
    }
}
