//! What every subcommand gets: the connection to the server, the output format asked for, and
//! the actor recorded with writes, made once by `main` from the global options.

use registry_client::Client;

use crate::output::Format;

/// The connection, the output format and the actor.
pub struct Context {
    /// The server connection.
    pub client: Client,
    /// The output format.
    pub format: Format,
    /// The actor.
    pub actor: String,
}
