//! A WASI command: exports `wasi:cli/run`, nothing of `kavro:plugin`.

fn main() {
    println!("not a plugin");
}
