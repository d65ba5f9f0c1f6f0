//! `registryd`, the all-in-one registry daemon: the command, query, audit and admin services on
//! one port, over one store (the embedded SQLite store by default), with gRPC health checking
//! and server reflection.
//!
//! One writer and one reader are shared by the services, so a write is visible to the queries
//! of this process as soon as its commit position is reached. `--services` hosts a subset, for
//! deployments that scale the read side apart from the write side.

use registry_service_core::serve::main_with;

/// mimalloc instead of the system allocator: glibc's malloc slowed down on the heap a national
/// registry leaves after its start (`_int_malloc` and `malloc_consolidate` took a large share of
/// a query's time in profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    main_with(registryd::build);
}
