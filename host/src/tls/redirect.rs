//! Plain HTTP when TLS is on: every request but an ACME challenge gets a
//! 308 to the same URL over HTTPS, unless its listener opted out.

use crate::actions::respond::Redirect;
use crate::config::tls::TlsConfig;

/// Where HTTP-01 challenges are fetched.
pub const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// The redirect plain requests get, if TLS asks for one.
pub fn to_https(tls: &TlsConfig) -> Option<Redirect> {
    if !tls.redirect {
        return None;
    }
    let port = match tls.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    // 308: the method and body are kept, unlike with 301.
    Some(Redirect::new(308, format!("https://{{host}}{port}{{uri}}")).expect("308 redirects"))
}
