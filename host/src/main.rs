use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = kavro_host::cli::Cli::parse();
    let code = kavro_host::server::main(cli);
    std::process::exit(code);
}
