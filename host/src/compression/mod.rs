//! Content codings: which one a client accepts, by RFC 9110's
//! `Accept-Encoding` with q-values; which responses Kavro compresses
//! ([`policy`]); the compressor ([`encoder`]); and the forms compressed
//! once and kept ([`store`]). Static routes also use the negotiation to
//! serve a file's precompressed sibling (`app.js.br`, `.zst`, `.gz`).

mod encoder;
mod policy;
mod store;

use http::HeaderMap;

pub use encoder::{compress, Compressing, Encoder};
pub use policy::{plan, Settings, DEFAULT_TYPES};
pub use store::Store;

/// The codings Kavro serves, in its order of preference when a client
/// weighs several alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Zstd,
    Gzip,
}

impl Encoding {
    pub const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of a precompressed sibling.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }
}

/// The codings a request's `Accept-Encoding` allows (its lines taken as
/// one list), best first (by q, then by Kavro's preference); empty for
/// identity. A header that does not parse, or with a q-value RFC 9110 does
/// not allow, counts as absent: identity.
pub fn acceptable(headers: &HeaderMap) -> Vec<Encoding> {
    let mut lines = headers.get_all(http::header::ACCEPT_ENCODING).iter();
    let joined;
    let accept = match (lines.next(), lines.next()) {
        (None, _) => return Vec::new(),
        (Some(one), None) => one.to_str().ok(),
        (Some(first), Some(second)) => {
            let all: Option<Vec<&str>> = [first, second]
                .into_iter()
                .chain(lines)
                .map(|v| v.to_str().ok())
                .collect();
            joined = all.map(|all| all.join(","));
            joined.as_deref()
        }
    };
    let Some(weights) = accept.and_then(weights) else {
        return Vec::new();
    };
    let star = weights.iter().find(|(t, _)| *t == "*").map(|(_, q)| *q);
    let mut ranked: Vec<(Encoding, u16)> = Encoding::ALL
        .into_iter()
        .filter_map(|e| {
            let named = weights.iter().find(|(t, _)| {
                t.eq_ignore_ascii_case(e.token())
                    || (e == Encoding::Gzip && t.eq_ignore_ascii_case("x-gzip"))
            });
            let q = named.map(|(_, q)| *q).or(star)?;
            (q > 0).then_some((e, q))
        })
        .collect();
    // Stable: equal weights keep Kavro's order.
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    ranked.into_iter().map(|(e, _)| e).collect()
}

/// Each coding token with its weight in thousandths; `None` when the
/// header is malformed.
fn weights(header: &str) -> Option<Vec<(&str, u16)>> {
    let mut out = Vec::new();
    for item in header.split(',') {
        let mut parts = item.split(';');
        let token = parts.next()?.trim();
        if token.is_empty() {
            // An empty list element is allowed (`gzip, , br`).
            if parts.next().is_none() {
                continue;
            }
            return None;
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return None;
        }
        let mut q = 1000;
        for param in parts {
            let (name, value) = param.split_once('=')?;
            let name = name.trim();
            if name.is_empty() {
                return None;
            }
            if name.eq_ignore_ascii_case("q") {
                q = qvalue(value.trim())?;
            }
        }
        out.push((token, q));
    }
    Some(out)
}

/// RFC 9110's qvalue: `0` or `1` with up to three decimals, at most 1.
fn qvalue(s: &str) -> Option<u16> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{frac:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Encoding::{Brotli, Gzip, Zstd};
    use super::*;
    use http::HeaderValue;

    fn accept(s: &str) -> Vec<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert("accept-encoding", HeaderValue::from_str(s).unwrap());
        acceptable(&headers)
    }

    #[test]
    fn q_values_rank_and_ties_keep_kavros_order() {
        assert_eq!(accept("gzip, deflate, br, zstd"), [Brotli, Zstd, Gzip]);
        assert_eq!(accept("gzip;q=1, br;q=0.5"), [Gzip, Brotli]);
        assert_eq!(accept("br;q=0, gzip"), [Gzip]);
        assert_eq!(accept("x-gzip"), [Gzip]);
        assert_eq!(accept("GZIP;Q=0.8"), [Gzip]);
        assert_eq!(accept("gzip, , br"), [Brotli, Gzip]);
        assert_eq!(acceptable(&HeaderMap::new()), []);
        assert_eq!(accept(""), []);
        assert_eq!(accept("identity"), []);
    }

    #[test]
    fn several_lines_are_one_list() {
        let mut headers = HeaderMap::new();
        headers.append("accept-encoding", HeaderValue::from_static("gzip"));
        headers.append("accept-encoding", HeaderValue::from_static("br;q=0.5"));
        assert_eq!(acceptable(&headers), [Gzip, Brotli]);
        headers.append("accept-encoding", HeaderValue::from_static("gzip;q=x"));
        assert_eq!(acceptable(&headers), []);
    }

    #[test]
    fn star_covers_what_is_not_named() {
        assert_eq!(accept("*"), [Brotli, Zstd, Gzip]);
        assert_eq!(accept("*;q=0.5, gzip"), [Gzip, Brotli, Zstd]);
        assert_eq!(accept("*;q=0"), []);
        assert_eq!(accept("identity;q=0, *;q=0, gzip;q=0.1"), [Gzip]);
    }

    #[test]
    fn garbage_and_absurd_q_values_mean_identity() {
        for bad in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=-1",
            "gzip;q=0.0001",
            "gzip;q=abc",
            "gzip;q",
            "gz ip",
            "br;q=0.5;=",
            "\u{7f}",
        ] {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(bad.as_bytes()) {
                headers.insert("accept-encoding", v);
            }
            assert_eq!(acceptable(&headers), [], "{bad}");
        }
    }
}
