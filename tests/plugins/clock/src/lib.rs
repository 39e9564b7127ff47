//! Reads the clock capability in package and reports it in headers:
//! `x-wall-ms`, `x-monotonic-ns` and `x-remaining-ms`, or `x-clock-error`
//! with the host's error when the capability was not granted.

use kavro_sdk::{clock, export, Manifest, Package, Plugin, Request, Response};

#[derive(Default)]
struct Clock;

impl Plugin for Clock {
    type State = ();
    fn manifest(&self) -> Manifest {
        // Not declared as a need, so that the host loads it without the
        // grant and its calls show the denial.
        Manifest::new("clock", env!("CARGO_PKG_VERSION"))
    }
}

impl Package for Clock {
    fn on_response(&self, _: &mut (), _: &Request, resp: &Response) {
        let read = || -> Result<[(&str, u64); 3], kavro_sdk::HostError> {
            Ok([
                ("x-wall-ms", clock::wall_ms()?),
                ("x-monotonic-ns", clock::monotonic_ns()?),
                ("x-remaining-ms", clock::remaining_ms()?),
            ])
        };
        match read() {
            Ok(values) => {
                for (name, value) in values {
                    let _ = resp.set_header(name, &value.to_string());
                }
            }
            Err(e) => {
                let _ = resp.set_header("x-clock-error", &format!("{e:?}"));
            }
        }
    }
}

export!(Clock: package);
