//! `regctl`, the registry's command-line tool (the library `registry_cli` holds it).

/// mimalloc instead of the system allocator: an import plans millions of rows, each a handful of
/// small allocations, on two threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    registry_cli::main();
}
