//! `registryd`, the all-in-one registry daemon: NOT BUILT YET (issue 5).
//!
//! This placeholder exists so that the README's run command is real and honest: it says what is
//! missing and exits with a failure status instead of pretending to serve.

fn main() {
    eprintln!(
        "registryd is not built yet: the domain, the event store and the read models exist as \
         libraries (crates/domain, crates/eventstore, crates/projections), but the gRPC services \
         that would serve them (issue 5) do not. Nothing is served."
    );
    std::process::exit(2);
}
