//! Answers in prime with what WASI lets it see:
//! `/env/NAME` the variable's value; `/read?PATH` a file's contents;
//! `/write?PATH` the result of writing there; `/list?PATH` a directory.
//! Errors are answered as text, so a test can see what was refused.

use kavro_sdk::{export, Manifest, Plugin, Prime, PrimeOutcome, Reply, Request};

#[derive(Default)]
struct Reader;

impl Plugin for Reader {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("wasi-reader", env!("CARGO_PKG_VERSION"))
    }
}

fn answer(text: String) -> PrimeOutcome {
    PrimeOutcome::Respond(Reply::new(200).body(text))
}

impl Prime for Reader {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        let path = req.path();
        let arg = req.query().unwrap_or_default();
        if let Some(name) = path.strip_prefix("/env/") {
            return answer(std::env::var(name).unwrap_or_else(|_| "unset".into()));
        }
        match path.as_str() {
            "/read" => {
                answer(std::fs::read_to_string(&arg).unwrap_or_else(|e| format!("error: {e}")))
            }
            "/write" => answer(match std::fs::write(&arg, "x") {
                Ok(()) => "wrote".into(),
                Err(e) => format!("error: {e}"),
            }),
            "/list" => answer(match std::fs::read_dir(&arg) {
                Ok(entries) => {
                    let mut names: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    names.join(",")
                }
                Err(e) => format!("error: {e}"),
            }),
            _ => PrimeOutcome::Continue,
        }
    }
}

export!(Reader: prime);
